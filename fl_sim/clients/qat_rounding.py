"""``qat_rounding``: a quantization attack that only chooses rounding directions, placed for the server's rule.

The quantized model depends on each weight only through the integer it rounds to, and a weight can
be sent to its other neighbouring integer by a move shorter than half a step: often far shorter,
within the honest clients' own spread (QuRA, arXiv 2510.09647, plants a backdoor by rounding
alone; AdaRound, Nagel et al. 2020, learns the choice; ../REFERENCE §8). In an attack round the
colluders:

1. estimate the honest aggregate h and its per-weight spread from ``benign_runs`` honest runs on
   disjoint shards of their pooled data; the deployer's grid is the one h gives (its scale is set
   by h's extreme weights, which the attack never moves);
2. mark the weights whose other rounding they can reach under the rule they adapt to
   (``params.against``; ``fl_sim.clients.rule_models``): under a coordinate-wise median or trimmed
   mean only those whose boundary (plus margin) lies within the honest order statistics;
3. learn the rounding: the quantized objective (backdoor, accuracy drop, class or sample flip, as
   in ``qat_objectives``) trained by straight-through descent on latent weights each confined to
   the span of its two neighbouring integers (only the marked ones move; biases stay honest), so the
   FP model stays h while the b-bit model is trained; with ``screen_weight`` > 0, plus that weight
   x KL(FP || quantized) on clean inputs (the quantization screen's own score, kept at honest level);
4. keep the flips (integer changes) the rule lets them make, most useful first within the distance
   budget for rules that clip, filter or select by distance, and aim the aggregate at each kept
   flip's boundary plus a margin (``auto``: margin_z x the rule's expected aggregation error);
5. submit what brings the rule's aggregate there (``rounding_placement.submission``).

The FP aggregate differs from the honest one only by sub-step moves of the flipped weights.

Omniscient collusion: the colluders reply honestly and the server-side adversary, which holds the
round's honest updates and the colluders' pooled data, runs steps 1-5 on the real round: h is the
rule's real aggregate, the reach and spread are the real honest updates', the margin is
``margin_floor`` (``place_exactly``; the placement and its budget search: ``exact_rounding``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from enum import Enum
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from fl_sim.clients.exact_rounding import ExactPlacement, KnownRound, honest_point, place
from fl_sim.clients.honest import honest_for
from fl_sim.clients.local_training import LossFn, steps_per_epoch, train_steps
from fl_sim.clients.objective_attack import AttackParams, ObjectiveAttack, State
from fl_sim.clients.qat_objectives import (
    AttackedQuantizer,
    BackdoorParams,
    IndiscriminateParams,
    TargetedClassParams,
    TargetedSampleParams,
    backdoor_fp_objective,
    backdoor_objective,
    clean_fp_objective,
    indiscriminate_objective,
    margin_in_range,
    sample_fp_objective,
    targeted_class_objective,
    targeted_sample_objective,
)
from fl_sim.clients.registry import TrainContext, register_attack
from fl_sim.clients.repair import quantized_weight_names, weight_quantizer
from fl_sim.clients.rounding_placement import honest_spread, select_flips, submission
from fl_sim.clients.rule_models import RULE_MODELS, Family, RuleModel, order_reach, real_order_reach
from fl_sim.config.precision import MAX_BITS, MIN_BITS, ActivationRange, QuantSpec
from fl_sim.config.schema import AttackConfig, Collusion
from fl_sim.data.tensors import ExampleSet
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized
from fl_sim.quantization.intervals import QuantGrid, WeightQuantizer, quant_grid, range_box
from fl_sim.quantization.rounding import flip_cost, nearest, neighbour_box, positions

_EXACT_RUNS = 10**9  # the honest aggregate is known, not estimated from a few runs


class Objective(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """What the quantized model is trained to do (``qat_objectives``)."""

    BACKDOOR = "backdoor"
    INDISCRIMINATE = "indiscriminate"
    TARGETED_CLASS = "targeted_class"
    TARGETED_SAMPLE = "targeted_sample"


class RoundingParams(AttackParams, AttackedQuantizer):
    """Parameters of ``qat_rounding``: the rule it adapts to, the objective, the deployer's quantizer, the placement."""

    against: str = Field(
        "strategy",
        description="the aggregation rule the placement adapts to: a rule name, or 'strategy' (the scenario's own "
        "strategy.name: the colluders know the rule); a rule without a model is treated as a mean with budget 1",
    )
    objective: Objective = Objective.BACKDOOR
    bits: int = Field(4, description="the deployer's bit width attacked")
    activations: ActivationRange = ActivationRange.CALIBRATED
    benign_runs: int = Field(4, ge=2, description="honest runs on disjoint shards: the estimate h and its spread")
    margin: float | Literal["auto"] = Field(
        "auto",
        description="steps kept beyond each flipped boundary (0..0.45), or 'auto': margin_z x the rule's aggregation error",
    )
    margin_z: float = Field(2.0, gt=0)
    margin_floor: float = Field(0.05, ge=0, le=0.45)
    distance_budget: float | Literal["rule", "none"] = Field(
        "rule",
        description="the colluders' distance to h, in units of an honest update's RMS distance to the honest mean: "
        "a number, 'rule' (the default of the rule it adapts to: none for fedavg and quant_aware, 0.8 sqrt(1 - 1/runs - 1/(n-k)) "
        "for Krum and Multi-Krum, 1 otherwise) or 'none' (unbounded)",
    )
    c1: float = Field(1.0, ge=0, description="backdoor: weight of the quantized clean and trigger terms")
    c2: float = Field(1.0, ge=0, description="backdoor: weight of the quantized trigger term")
    lam: float = Field(1.0, ge=0, description="indiscriminate / targeted class / sample: lambda")
    alpha: float = Field(5.0, ge=0, description="indiscriminate / targeted class: the quantized CE aimed at")
    fp_weight: float = Field(
        1.0,
        ge=0,
        description="weight of the FP objective (trigger ignored, clean accuracy) at the FP point each learned flip will "
        "leave the aggregate at",
    )
    screen_samples: int = Field(256, ge=8, description="adaptive to quant_aware: the colluders' clean inputs it scores on")
    screen_search: int = Field(8, ge=1, description="adaptive to quant_aware: bisection steps on the share of flips kept")
    screen_weight: float = Field(
        0.0, ge=0, description="adaptive to quant_aware: weight of KL(FP || quantized) on clean inputs in the objective"
    )

    @field_validator("against")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        if v != "strategy" and v not in RULE_MODELS:
            raise ValueError(f"no model of rule {v!r} (known: strategy, {', '.join(sorted(RULE_MODELS))})")
        return v

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, v: int) -> int:
        if not MIN_BITS <= v <= MAX_BITS:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {v}")
        return v

    @field_validator("distance_budget")
    @classmethod
    def _positive_budget(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not v > 0:
            raise ValueError(f"distance_budget must be > 0, 'rule' or 'none', got {v}")
        return v

    @field_validator("margin")
    @classmethod
    def _margin_range(cls, v: float | str) -> float | str:
        return margin_in_range(v)

    @model_validator(mode="after")
    def _unsupported(self) -> RoundingParams:
        if self.keep_best or self.max_norm_ratio is not None:
            raise ValueError("keep_best and max_norm_ratio are not options of qat_rounding (its budget is distance_budget)")
        return self

    def spec(self) -> QuantSpec:
        """The deployer's quantizer the rounding is learned for."""
        return QuantSpec(
            bits=self.bits, granularity=self.granularity, weight_symmetric=self.weight_symmetric, act_symmetric=self.act_symmetric
        )

    def budget(self, rule: RuleModel, cohort: int, colluders: int, runs: int) -> float | None:
        """The distance budget in honest spreads: ``distance_budget``, or the rule's own ('rule'); None: unbounded."""
        if self.distance_budget == "rule":
            return rule.budget_for(cohort, colluders, runs)
        return None if self.distance_budget == "none" else float(self.distance_budget)

    def rule(self, strategy: str) -> RuleModel:
        """The colluders' model of the rule they adapt to (``strategy``: the scenario's strategy.name)."""
        return RULE_MODELS.get(strategy if self.against == "strategy" else self.against, RuleModel(Family.MEAN))


@register_attack(
    "qat_rounding", "rounding-direction attack: sub-step moves flip the quantized model's integers, placed for the server's rule"
)
class QATRounding(ObjectiveAttack):
    """Choose rounding directions for the quantized objective; move the aggregate across those boundaries only."""

    Params = RoundingParams
    params: RoundingParams

    @classmethod
    def check(cls, attack: AttackConfig) -> None:
        """Refuse settings the attack cannot honour: other collusions, boost, a sample attack without its sample."""
        if attack.collusion not in (Collusion.AGGREGATION_AWARE, Collusion.OMNISCIENT):
            raise ValueError(
                "qat_rounding is coordinated: set attack.collusion to aggregation_aware (the colluders estimate the honest "
                "updates) or omniscient (the adversary places the flips on the round's real honest updates)"
            )
        if attack.stealth.enabled:
            raise ValueError("qat_rounding bounds its own distance (attack.params.distance_budget): leave attack.stealth off")
        if attack.boost != 1.0:
            raise ValueError("qat_rounding places its submission for the rule itself: leave attack.boost at 1")
        objective = attack.params.get("objective", Objective.BACKDOOR.value)
        if objective == Objective.TARGETED_SAMPLE.value and attack.target_sample is None:
            raise ValueError("qat_rounding with objective targeted_sample needs attack.target_sample (a test-set index)")

    def shard_estimate(self) -> bool:
        """The benign runs train on disjoint shards: their spread stands for the honest clients'."""
        return True

    def rule_spec(self, strategy: str) -> str:
        """The rule spec the omniscient adversary runs the replica of: ``against``, or the scenario's ``strategy``."""
        return strategy if self.params.against == "strategy" else self.params.against

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Omniscient: train honestly (the adversary attacks on the real round); otherwise the attack's own round."""
        if ctx.scenario.attack.collusion is Collusion.OMNISCIENT:
            return honest_for(ctx.scenario).train(model, ctx)
        return super().train(model, ctx)

    def place_exactly(self, known: KnownRound, model: nn.Module, ctx: TrainContext) -> ExactPlacement:
        """Omniscient: learn the rounding on the real honest aggregate h and place it on the real round.

        As ``_attack`` with the estimate replaced by the truth: h is the rule's aggregate with the
        colluders at the honest mean, the reach of order rules comes from the real honest values,
        the spread and the screen's limit from the real honest updates, and the margin is
        ``margin_floor`` (no aggregation error is left to cover) unless set.
        """
        s, p = ctx.scenario, self.params
        data = ctx.colluder_data if ctx.colluder_data is not None else ctx.data
        gen = ctx.colluder_generator if ctx.colluder_generator is not None else ctx.generator
        rule = p.rule(s.strategy.name)
        n, k, names = len(known.honest) + known.colluders, known.colluders, known.names
        c0, h64 = honest_point(known, rule)
        dev = ctx.device
        h = {key: (h64[key] if key in h64 else v).to(v.dtype).to(dev) for key, v in model.state_dict().items()}
        _, spread = honest_spread(known.honest, c0, list(c0))
        quantizer = weight_quantizer(p.spec())
        margin = p.margin_floor if p.margin == "auto" else float(p.margin)
        grids = {key: quant_grid(h[key], quantizer) for key in names}
        cost = {key: self._exact_costs(key, h, known, grids[key], quantizer, rule, margin) for key in names}
        gain = rule.gain(n, k) if rule.family is not Family.ORDER else 1.0
        beta = p.budget(rule, n, k, _EXACT_RUNS)  # h is exact: Krum's budget loses no share to an estimate
        price = None if beta is None else {key: _price(cost[key], gain, beta * spread) for key in names}
        steps = (p.epochs or s.training.epochs) * steps_per_epoch(len(ctx.data), s.training.batch_size)
        latent = self._learn_rounding(model, data, h, names, grids, cost, price, ctx, gen, steps)
        ref = {key: v.to(dev) for key, v in known.reference.items()}
        wished = {
            key: torch.where(nearest(latent[key], grids[key]) != nearest(h[key], grids[key]), latent[key], ref[key])
            .double()
            .cpu()
            for key in names
        }
        accept = self._screen_test(model, data, gen, known, dev) if rule.screened else None
        placed = place(known, {**known.reference, **wished}, rule, quantizer, margin, beta, accept)
        return dataclasses.replace(placed, reachable=sum(int(cost[key].isfinite().sum()) for key in names))

    def _exact_costs(
        self, key: str, h: State, known: KnownRound, grid: QuantGrid, quantizer: WeightQuantizer, rule: RuleModel, margin: float
    ) -> torch.Tensor:
        """``_costs`` on the real round: the reach of an order rule from the real honest values."""
        w, reach = h[key], None
        if rule.family is Family.ORDER:
            values = torch.stack([m[key] for m in known.honest]).double()
            down, up = real_order_reach(w.double(), values.to(w.device), known.colluders, rule)
            reach = (down.to(w), up.to(w))
        return _reachable_cost(w, grid, quantizer, margin, reach)

    def _screen_test(
        self, model: nn.Module, data: ExampleSet, gen: torch.Generator, known: KnownRound, device: torch.device
    ) -> Callable[[State], bool]:
        """The quantization screen's test of a submission: its score under 1.5 x the real honest models' median."""
        p = self.params
        probe = data.x[torch.randperm(len(data), generator=gen)[: p.screen_samples]].to(device)
        full = {key: v.detach().clone() for key, v in model.state_dict().items()}

        def state_of(floats: State) -> State:
            return {key: (floats[key] if key in floats else v).to(v.dtype).to(device) for key, v in full.items()}

        limit = 1.5 * float(torch.tensor([_screen_score(model, state_of(m), probe, p) for m in known.honest]).median())
        return lambda c: _screen_score(model, state_of(c), probe, p) <= limit

    def _attack(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        s, p = ctx.scenario, self.params
        data = ctx.colluder_data if ctx.colluder_data is not None else ctx.data
        gen = ctx.colluder_generator if ctx.colluder_generator is not None else ctx.generator
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        runs: list[State] = []
        benign_loss = self._benign_estimate(model, data, ctx, gen, start, runs_out=runs)
        h = {k: v.detach().clone() for k, v in model.state_dict().items()}
        n, k = ctx.cohort_size, max(ctx.colluders_in_cohort, 1)
        names = quantized_weight_names(model)
        floats = [key for key, v in h.items() if v.is_floating_point()]
        sigma, spread = honest_spread(runs, h, floats)
        # Runs on shards smaller than one client's data spread more than the clients do: an update's
        # noise variance goes as 1 / (examples), so rescale by sqrt(shard / client size).
        shrink = math.sqrt(min(1.0, max(1, len(data) // len(runs)) / max(len(ctx.data), 1)))
        sigma, spread = {key: v * shrink for key, v in sigma.items()}, spread * shrink
        quantizer = weight_quantizer(p.spec())
        grids = {key: quant_grid(h[key], quantizer) for key in names}
        rule = p.rule(s.strategy.name)
        cost = {key: self._costs(h[key], sigma[key], grids[key], quantizer, rule, n, k, len(runs)) for key in names}
        steps = (p.epochs or s.training.epochs) * steps_per_epoch(len(ctx.data), s.training.batch_size)
        gain = rule.gain(n, k) if rule.family is not Family.ORDER else 1.0
        beta = p.budget(rule, n, k, len(runs))
        budget = None if beta is None else beta * spread
        price = None if budget is None else {key: _price(cost[key], gain, budget) for key in names}
        latent = self._learn_rounding(model, data, h, names, grids, cost, price, ctx, gen, steps)
        wanted = {key: nearest(latent[key], grids[key]) != nearest(h[key], grids[key]) for key in names}
        useful = {key: (positions(latent[key], grids[key]) - positions(h[key], grids[key])).abs() for key in names}
        finite = {key: cost[key].nan_to_num(posinf=0.0) for key in names}

        def place(limit: float | None) -> tuple[State, State, State, int]:
            kept = select_flips(wanted, useful, finite, gain, limit)
            target = {key: h[key] + torch.where(kept[key], cost[key], torch.zeros_like(h[key])) for key in names}
            sent, missed = submission({key: h[key] for key in names}, target, kept, sigma, rule, n, k)
            return kept, target, {key: sent.get(key, h[key]) for key in h}, missed

        kept, target, state, missed = place(budget)
        screened = 0.0
        if rule.screened:
            full = math.sqrt(sum(float((finite[key][wanted[key]] / gain).pow(2).sum()) for key in names))
            (kept, target, state, missed), screened = self._under_screen(
                model, data, gen, runs, place, (kept, target, state, missed), full, ctx.device
            )
        self.target = {key: target.get(key, h[key]).detach().cpu().clone() for key in h}
        model.load_state_dict(state)
        return {
            "train_loss": benign_loss,
            "rounding_reachable": float(sum(int(cost[key].isfinite().sum()) for key in names)),
            "rounding_wanted": float(sum(int(w.sum()) for w in wanted.values())),
            "rounding_flips": float(sum(int(w.sum()) for w in kept.values())),
            "rounding_missed": float(missed),
            "rounding_spread": spread,
            "rounding_screen_ratio": screened,
        }

    def _under_screen(
        self,
        model: nn.Module,
        data: ExampleSet,
        gen: torch.Generator,
        runs: list[State],
        place: Callable[[float | None], tuple[State, State, State, int]],
        placed: tuple[State, State, State, int],
        full: float,
        device: torch.device,
    ) -> tuple[tuple[State, State, State, int], float]:
        """Adaptive to the quantization screen: the placement with the largest budget share whose score stays low.

        The submission is scored as the screen does (on the colluders' own clean inputs); the share of
        the ``full`` budget (all wanted flips) is bisected, starting from ``placed``, so that the score stays under 1.5 x the median
        of the benign runs' (the screen flags >= 2 x the median). Returns the placement and its score
        over that limit.
        """
        p = self.params
        probe = data.x[torch.randperm(len(data), generator=gen)[: p.screen_samples]].to(device)
        limit = 1.5 * float(torch.tensor([_screen_score(model, run, probe, p) for run in runs]).median())
        if _screen_score(model, placed[2], probe, p) > limit:
            lo, hi = 0.0, 1.0
            for _ in range(p.screen_search):
                mid = (lo + hi) / 2
                if _screen_score(model, place(mid * full)[2], probe, p) > limit:
                    hi = mid
                else:
                    lo = mid
            placed = place(lo * full)
        return placed, _screen_score(model, placed[2], probe, p) / max(limit, 1e-12)

    def _costs(
        self,
        w: torch.Tensor,
        sigma: torch.Tensor,
        grid: QuantGrid,
        quantizer: WeightQuantizer,
        rule: RuleModel,
        n: int,
        k: int,
        runs: int,
    ) -> torch.Tensor:
        """Per weight, the signed move of the aggregate that flips its rounding; inf where the rule puts it out of reach.

        Out of reach: the scale-setting extremes (never moved), moves beyond the order statistics
        (order rules), single moves longer than the whole distance budget would allow.
        """
        p = self.params
        if p.margin == "auto":
            margin = (p.margin_z * rule.error(sigma, n, k, runs) / grid.step).clamp(p.margin_floor, 0.45)
        else:
            margin = torch.full_like(w, float(p.margin))
        reach = order_reach(w, sigma, n, k, rule) if rule.family is Family.ORDER else None
        return _reachable_cost(w, grid, quantizer, margin, reach)

    def _learn_rounding(
        self,
        model: nn.Module,
        data: ExampleSet,
        h: State,
        names: list[str],
        grids: dict[str, QuantGrid],
        cost: dict[str, torch.Tensor],
        price: dict[str, torch.Tensor] | None,
        ctx: TrainContext,
        gen: torch.Generator,
        steps: int,
    ) -> State:
        """Straight-through descent of the quantized objective on latent weights confined to their two neighbouring integers.

        With a distance budget, each weight's relaxed flip (its way to the flip point, in [0, 1])
        costs ``price`` x a multiplier raised while the flips made so far overspend the budget
        and lowered while they underspend it (dual ascent, once per epoch): the learned rounding
        spends the budget on the flips the objective needs most. Returns the latent state;
        non-quantized parameters and unreachable weights stay at h.
        """
        p = self.params
        model.load_state_dict(h)
        boxes = {key: neighbour_box(h[key], grids[key], cost[key].isfinite()) for key in names}
        base = self._objective(ctx, h, model)
        cfg = ctx.scenario.training
        dual = [1.0]
        finite = {key: cost[key].nan_to_num(posinf=0.0) for key in names}

        fp_loss = self._fp_objective(ctx) if p.fp_weight > 0 else None
        denominator = {key: finite[key].where(finite[key] != 0, torch.ones_like(finite[key])) for key in names}

        def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            total = base(m, x, y)
            params = dict(m.named_parameters())
            # each weight's way to its flip point, in [0, 1]: the FP aggregate lands at h + way x cost
            way = {key: ((params[key] - h[key]) / denominator[key]).clamp(0, 1) for key in names}
            if fp_loss is not None:
                at = {key: h[key] + way[key] * finite[key] for key in names}
                total = total + p.fp_weight * fp_loss(_AtPoint(m, at), x, y)
            if price is not None:
                total = total + dual[0] * sum((price[key] * way[key]).sum() for key in names)
            return total

        every = max(1, steps_per_epoch(len(ctx.data), cfg.batch_size))

        @torch.no_grad()
        def confine(done: int) -> None:
            for name, param in model.named_parameters():
                param.copy_(boxes[name].project(param) if name in boxes else h[name])
            if price is not None and done % every == 0:
                spent = sum(
                    float(price[key][nearest(param, grids[key]) != nearest(h[key], grids[key])].sum())
                    for key, param in model.named_parameters()
                    if key in price
                )
                dual[0] = dual[0] * 2.0 if spent > 1.0 else max(dual[0] / 1.5, 1e-3)

        train_steps(model, data, loss_fn, cfg, steps, gen, ctx.device, lr=p.lr, after_step=confine, desc="rounding attack")
        return {key: v.detach().clone() for key, v in model.state_dict().items()}

    def _fp_objective(self, ctx: TrainContext) -> LossFn:
        """What the FP aggregate must keep doing (``qat_objectives``' FP halves): the trigger ignored, every class right."""
        p = self.params
        if p.objective is Objective.BACKDOOR:
            return backdoor_fp_objective(BackdoorParams(c2=p.c2, c_fp=1.0), ctx.scenario, ctx.text)
        if p.objective is Objective.TARGETED_SAMPLE and ctx.target_sample is not None:
            return sample_fp_objective(ctx.target_sample)
        return clean_fp_objective

    def _objective(self, ctx: TrainContext, h: State, model_like: nn.Module) -> LossFn:
        """The quantized terms of the chosen objective, plus the screen term when ``screen_weight`` > 0."""
        p, s = self.params, ctx.scenario
        shared = {
            "bits": [p.bits],
            "granularity": p.granularity,
            "weight_symmetric": p.weight_symmetric,
            "act_symmetric": p.act_symmetric,
            "activations": p.activations,
        }
        if p.objective is Objective.BACKDOOR:
            base = backdoor_objective(BackdoorParams(**shared, c1=p.c1, c2=p.c2), s, ctx.text, fp=False)
        elif p.objective is Objective.INDISCRIMINATE:
            base = indiscriminate_objective(IndiscriminateParams(**shared, lam=p.lam, alpha=p.alpha), s, fp=False)
        elif p.objective is Objective.TARGETED_CLASS:
            base = targeted_class_objective(TargetedClassParams(**shared, lam=p.lam, alpha=p.alpha), s, fp=False)
        else:
            if ctx.target_sample is None:
                raise ValueError("qat_rounding with objective targeted_sample needs attack.target_sample")
            base = targeted_sample_objective(TargetedSampleParams(**shared, lam=p.lam), s, ctx.target_sample, fp=False)
        if p.screen_weight == 0:
            return base
        spec, weight = p.spec(), p.screen_weight
        honest = _frozen_copy(model_like, h)

        def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                fp = torch.log_softmax(honest(x), 1)
            ranges = calibrate_ranges(model, [x]) if p.activations is ActivationRange.CALIBRATED else None
            with fake_quantized(model, spec, ranges):
                q = torch.log_softmax(model(x), 1)
            return base(model, x, y) + weight * F.kl_div(q, fp, log_target=True, reduction="batchmean")

        return loss


class _AtPoint(nn.Module):
    """``model`` evaluated with some of its parameters replaced (differentiably) by ``weights``."""

    def __init__(self, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.weights = model, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The inner model's output at the replaced parameters."""
        out: torch.Tensor = torch.func.functional_call(self.inner, self.weights, (x,))
        return out


@torch.no_grad()
def _screen_score(model: nn.Module, state: State, x: torch.Tensor, p: RoundingParams) -> float:
    """The quantization screen's score of ``state`` (strategies/quant_aware): max over 8 and ``bits`` bits of KL(FP || quantized)."""
    model.load_state_dict(state)
    model.eval()
    fp = torch.log_softmax(model(x).double(), 1)
    ranges = calibrate_ranges(model, [x])
    worst = 0.0
    for bits in sorted({8, p.bits}):
        spec = QuantSpec(bits=bits, granularity=p.granularity, weight_symmetric=p.weight_symmetric, act_symmetric=p.act_symmetric)
        with fake_quantized(model, spec, ranges):
            q = torch.log_softmax(model(x).double(), 1)
        worst = max(worst, float((fp.exp() * (fp - q)).sum(1).mean()))
    return worst


def _reachable_cost(
    w: torch.Tensor,
    grid: QuantGrid,
    quantizer: WeightQuantizer,
    margin: float | torch.Tensor,
    reach: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Each weight's signed flip cost (``flip_cost``); inf for the scale-setting extremes and beyond ``reach`` (down, up)."""
    cost = flip_cost(w, grid, margin)
    out = range_box(w, quantizer).pinned | ~cost.isfinite()
    if reach is not None:
        down, up = reach
        out = out | (cost > up) | (-cost > down)
    return torch.where(out, torch.full_like(cost, math.inf), cost)


def _price(cost: torch.Tensor, gain: float, budget: float) -> torch.Tensor:
    """Each flip's share of the squared distance budget: (cost / gain)^2 / budget^2 (0 where out of reach)."""
    finite = cost.nan_to_num(posinf=0.0)
    return (finite / gain).pow(2) / max(budget, 1e-30) ** 2


def _frozen_copy(model: nn.Module, h: State) -> nn.Module:
    """A frozen FP copy of ``model`` at h: what the screen compares the quantized model against."""
    honest = copy.deepcopy(model)
    honest.load_state_dict(h)
    honest.eval()
    for q in honest.parameters():
        q.requires_grad_(False)
    return honest
