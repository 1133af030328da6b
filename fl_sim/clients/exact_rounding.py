"""Omniscient ``qat_rounding``: the rounding learned and placed on the round's real honest updates.

Under omniscient collusion the server-side adversary (``fl_sim.server.adversary``) holds the round's
honest updates, and the colluders' coordinator holds their pooled data: the colluders reply honestly
and the adversary does the attack on the real round (``QATRounding.place_exactly``):

1. c0 = the honest clients' example-weighted mean; h = the rule's aggregate when every colluder
   submits c0 (their most unremarkable reply); the deployer's grid is h's;
2. which roundings the rule lets them change: order rules (median, trimmed mean) by the real order
   statistics (``rule_models.real_order_reach``), distance rules within the real honest spread;
3. the rounding is learned on h (``qat_rounding``) and read back as a wish: a flip is wanted where the
   wished integer is a neighbour of h's own and the weight does not set the scale; it is aimed at that
   integer with ``margin`` steps to spare (``rounding.crossing``);
4. the submission c: mean-like rules c = c0 + (t - h) / gain, then corrected by the rule's real
   response; order rules: per coordinate the c that the real honest values need (``solve_order``);
5. rules that clip, filter, select by distance or screen: the distance budget (in honest spreads)
   is searched on a ladder around the rule's default, the most useful flips per unit of distance
   kept (``select_flips``), each candidate's aggregate computed by the rule's replica (and each
   submission put to ``accept``, the screen's own test); the candidate landing the most useful
   flips wins.

Every candidate is scored on the aggregate the rule returns (its replica, ``fl_sim.rule_replicas``),
re-gridded as the deployer would. Without a replica the colluders' model of the rule stands in
(``rule_models``) and the rule's default budget is used unsearched, unless ``accept`` (a real test
of each submission) screens the candidates. Pure maths on model states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from fl_sim.clients.registry import TrainContext
from fl_sim.clients.rounding_placement import honest_spread, select_flips
from fl_sim.clients.rule_models import Family, RuleModel, order_aggregate, solve_order
from fl_sim.quantization.intervals import WeightQuantizer, quant_grid, range_box
from fl_sim.quantization.rounding import crossing, nearest, positions

State = dict[str, torch.Tensor]
Aggregate = Callable[[State], State]  # the colluders' common submission -> the rule's aggregate (model states)

# The distance budgets tried, as multiples of the rule's default (None: every wanted flip).
LADDER: tuple[float | None, ...] = (0.25, 0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0, None)
CORRECTIONS = 2  # mean-like rules: steps that correct the submission by the rule's real response


@dataclass(frozen=True)
class KnownRound:
    """What the omniscient adversary holds in an attack round (model states; float entries only)."""

    reference: State  # the global model the round started from
    honest: list[State]  # the honest clients' models
    counts: list[float]  # their example counts
    colluders: int  # k
    colluder_count: float  # the example count each colluder reports
    names: list[str]  # the quantized weights
    replica: Aggregate | None  # the rule's aggregate as a function of the colluders' submission; None: no replica


@dataclass(frozen=True)
class ExactPlacement:
    """The submission and what it achieves on the real round."""

    submission: State
    wanted: int  # flips the colluders asked for that h leaves reachable in kind (neighbour, not an extreme)
    kept: int  # flips placed
    landed: int  # wanted flips the rule's aggregate rounds as wished (on the deployer's grid of that aggregate)
    collateral: int  # integers of the aggregate that changed from h's without being wanted
    budget: float | None  # the distance budget used, in honest spreads (None: unbounded)
    exact: bool  # scored on the rule's replica (False: on the colluders' model of the rule)
    reachable: int | None = None  # weights whose rounding the rule lets the colluders change (set by the attack)

    def metrics(self) -> dict[str, float]:
        """The figures a round record keeps ("budget" only where one bounded the flips)."""
        out = {
            "wanted": float(self.wanted),
            "kept": float(self.kept),
            "landed": float(self.landed),
            "collateral": float(self.collateral),
            "exact": float(self.exact),
        }
        if self.reachable is not None:
            out["reachable"] = float(self.reachable)
        return out if self.budget is None else {**out, "budget": self.budget}


@runtime_checkable
class ExactPlacer(Protocol):
    """An attack whose colluders' replies the omniscient adversary places on the real round."""

    def rule_spec(self, strategy: str) -> str:
        """The spec of the rule the placement adapts to, given the scenario's (``strategy.spec``)."""
        ...

    def place_exactly(self, known: KnownRound, model: nn.Module, ctx: TrainContext) -> ExactPlacement:
        """The colluders' common submission for ``known``; ``model`` to learn on, ``ctx`` a colluder's context."""
        ...


@dataclass(frozen=True)
class _Wish:
    here: State  # h's integers
    desired: State  # the wished integers
    wanted: State  # bool: flips to make
    useful: State  # how far (in steps) the learned latent went: the flip's worth to the objective
    target: State  # where each wanted weight must land (h elsewhere)


def read_wish(wish: State, reference: State, h: State, names: list[str], quantizer: WeightQuantizer, margin: float) -> _Wish:
    """The flips the colluders' reply asks for, on h's grid: a wished weight differs from the reference."""
    here, desired, wanted, useful, target = {}, {}, {}, {}, {}
    for key in names:
        grid = quant_grid(h[key], quantizer)
        here[key], desired[key] = nearest(h[key], grid), nearest(wish[key], grid)
        asked = wish[key] != reference[key]
        pinned = range_box(h[key], quantizer).pinned
        wanted[key] = asked & ~pinned & ((desired[key] - here[key]).abs() == 1)
        useful[key] = torch.where(wanted[key], (positions(wish[key], grid) - positions(h[key], grid)).abs(), 0.0)
        target[key] = torch.where(wanted[key], crossing(h[key], desired[key], grid, margin), h[key])
    return _Wish(here, desired, wanted, useful, target)


def score(aggregate: State, wish: _Wish, names: list[str], quantizer: WeightQuantizer) -> tuple[int, float, int]:
    """(landed, their summed usefulness, collateral) of ``aggregate`` on its own grid."""
    landed, worth, collateral = 0, 0.0, 0
    for key in names:
        q = nearest(aggregate[key], quant_grid(aggregate[key], quantizer))
        hit = wish.wanted[key] & (q == wish.desired[key])
        landed += int(hit.sum())
        worth += float(wish.useful[key][hit].sum())
        collateral += int((~wish.wanted[key] & (q != wish.here[key])).sum())
    return landed, worth, collateral


def weighted_mean(states: list[State], weights: list[float]) -> State:
    """The example-weighted mean of model states (float64)."""
    total = sum(weights)
    return {k: sum(w * s[k] for s, w in zip(states, weights)) / total for k in states[0]}  # type: ignore[misc]


def modelled_aggregate(known: KnownRound, rule: RuleModel) -> Aggregate:
    """The colluders' model of a rule without a replica: the weighted mean, or the order statistic, of every reply."""
    k, states = known.colluders, known.honest

    def aggregate(c: State) -> State:
        if rule.family is Family.ORDER:
            return {
                key: order_aggregate(torch.stack([s[key] for s in states] + [c[key]] * k), rule.statistic, rule.trim) for key in c
            }
        return weighted_mean([*states, *([c] * k)], [*known.counts, *([known.colluder_count] * k)])

    return aggregate


def honest_point(known: KnownRound, rule: RuleModel) -> tuple[State, State]:
    """(c0, h): the honest example-weighted mean, and the rule's aggregate when every colluder submits it."""
    c0 = weighted_mean(known.honest, known.counts)
    return c0, aggregator(known, rule)(c0)


def aggregator(known: KnownRound, rule: RuleModel) -> Aggregate:
    """The rule's replica, or the colluders' model of the rule where it has none."""
    return known.replica if known.replica is not None else modelled_aggregate(known, rule)


def place(
    known: KnownRound,
    wished: State,
    rule: RuleModel,
    quantizer: WeightQuantizer,
    margin: float,
    budget: float | None,
    accept: Callable[[State], bool] | None = None,
) -> ExactPlacement:
    """The submission that lands the most useful wished flips on the rule's real aggregate.

    ``wished``: the learned latent of each weight whose rounding should change, the reference
    elsewhere. ``budget``: the rule's default distance budget in honest spreads (None: the rule
    bounds none); with a replica it is searched on ``LADDER``, as it is (around one spread) when
    ``accept`` screens the submissions.
    """
    aggregate, exact = aggregator(known, rule), known.replica is not None
    c0, h = honest_point(known, rule)
    wish = read_wish(wished, known.reference, h, known.names, quantizer, margin)
    n, k = len(known.honest) + known.colluders, known.colluders
    if rule.family is Family.ORDER:
        return _order_placement(known, rule, quantizer, c0, wish, aggregate, exact)
    if accept is not None and budget is None:
        budget = 1.0
    share = known.colluders * known.colluder_count / (sum(known.counts) + known.colluders * known.colluder_count)
    gain = share if rule.family is Family.MEAN else rule.gain(n, k)
    _, spread = honest_spread(known.honest, c0, list(c0))
    cost = {key: wish.target[key] - h[key] for key in known.names}
    ladder = LADDER if (exact or accept is not None) and budget is not None else (1.0,)  # the screen is a real test too
    best: ExactPlacement | None = None
    best_worth = -1.0
    for factor in ladder:
        limit = None if budget is None or factor is None else factor * budget
        kept = select_flips(wish.wanted, wish.useful, cost, gain, None if limit is None else limit * spread)
        for c in _corrected(c0, h, wish.target, kept, gain, aggregate):
            if accept is not None and not accept(c):
                continue
            landed, worth, collateral = score(aggregate(c), wish, known.names, quantizer)
            if worth > best_worth:
                best_worth = worth
                best = ExactPlacement(c, _count(wish.wanted), _count(kept), landed, collateral, limit, exact)
    if best is None:  # the screen takes no candidate: submit the honest mean
        landed, _, collateral = score(aggregate(c0), wish, known.names, quantizer)
        best = ExactPlacement(c0, _count(wish.wanted), 0, landed, collateral, 0.0, exact)
    return best


def _corrected(c0: State, h: State, target: State, kept: State, gain: float, aggregate: Aggregate) -> list[State]:
    """The submission c0 + (t - h) / gain on the kept weights, then ``CORRECTIONS`` steps by the rule's real response."""
    c = {key: c0[key] + torch.where(kept[key], (target[key] - h[key]) / gain, 0.0) if key in kept else c0[key] for key in c0}
    out = [c]
    for _ in range(CORRECTIONS):
        a = aggregate(c)
        c = {key: c[key] + torch.where(kept[key], (target[key] - a[key]) / gain, 0.0) if key in kept else c[key] for key in c}
        out.append(c)
    return out


def _order_placement(
    known: KnownRound, rule: RuleModel, quantizer: WeightQuantizer, c0: State, wish: _Wish, aggregate: Aggregate, exact: bool
) -> ExactPlacement:
    """Median / trimmed mean: per wanted coordinate the c the real honest values need; unreachable ones stay at c0."""
    c, kept = dict(c0), {}
    for key in known.names:
        m = wish.wanted[key]
        kept[key] = torch.zeros_like(m)
        if not bool(m.any()):
            continue
        values = torch.stack([s[key][m] for s in known.honest])
        solved, reached = solve_order(values, known.colluders, wish.target[key][m], rule)
        column = c0[key].clone()
        column[m] = torch.where(reached, solved, c0[key][m])
        c[key] = column
        mask = kept[key].clone()
        mask[m] = reached
        kept[key] = mask
    landed, _, collateral = score(aggregate(c), wish, known.names, quantizer)
    return ExactPlacement(c, _count(wish.wanted), _count(kept), landed, collateral, None, exact)


def _count(masks: State) -> int:
    return sum(int(v.sum()) for v in masks.values())
