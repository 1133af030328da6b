"""Where the rounding attack puts the aggregate, and what the colluders submit to get it there.

Given the honest estimate h, per quantized weight the signed move that flips its rounding with a
margin (``quantization.rounding.flip_cost``) and how strongly the attack wants the flip, the
colluders keep the flips their rule lets them make (the most useful per unit of cost first, within
their distance budget), aim the aggregate at t = h + those moves, and submit the c that brings the
rule's aggregate to t (``fl_sim.clients.rule_models``). Pure maths on tensors.
"""

from __future__ import annotations

import torch

from fl_sim.clients.rule_models import Family, RuleModel, solve_order, synthetic_honest

State = dict[str, torch.Tensor]


def honest_spread(runs: list[State], mean: State, keys: list[str]) -> tuple[State, float]:
    """Per coordinate, the std of one honest update (over the runs); and the RMS distance of a run from their mean.

    The distance is the whole update's (every key of ``keys``), with Bessel's correction. Needs two
    or more runs; with fewer the spread is zero.
    """
    r = len(runs)
    if r < 2:
        return {k: torch.zeros_like(mean[k]) for k in keys}, 0.0
    sigma = {k: torch.stack([run[k].double() for run in runs]).std(0, unbiased=True).to(mean[k].dtype) for k in keys}
    sq = sum(sum(float((run[k].double() - mean[k].double()).pow(2).sum()) for k in keys) for run in runs)
    return sigma, (sq / (r - 1)) ** 0.5


def select_flips(wanted: State, useful: State, cost: State, gain: float, budget: float | None) -> State:
    """The flips kept: all of ``wanted``, or within ``budget`` the most useful per unit of squared cost.

    ``cost`` holds each weight's signed move of the aggregate (FP units); the colluders move by
    cost / ``gain``, and the squared lengths of the kept moves add up to at most ``budget``^2.
    Returns, per key, a boolean mask.
    """
    if budget is None:
        return {k: w.clone() for k, w in wanted.items()}
    keys = list(wanted)
    flat_want = torch.cat([wanted[k].flatten() for k in keys])
    sq = torch.cat([(cost[k] / gain).double().pow(2).flatten() for k in keys])
    score = torch.cat([useful[k].double().flatten() for k in keys]) / sq.clamp_min(1e-30)
    score = torch.where(flat_want, score, torch.full_like(score, -1.0))
    order = score.argsort(descending=True)
    spent = torch.where(flat_want[order], sq[order], torch.zeros_like(sq)).cumsum(0)
    keep_sorted = flat_want[order] & (spent <= budget**2)
    keep = torch.zeros_like(flat_want)
    keep[order] = keep_sorted
    out, at = {}, 0
    for k in keys:
        n = wanted[k].numel()
        out[k] = keep[at : at + n].reshape(wanted[k].shape)
        at += n
    return out


def submission(
    h: State, target: State, moved: State, sigma: State, rule: RuleModel, cohort: int, colluders: int
) -> tuple[State, int]:
    """What each colluder submits so that the rule's aggregate lands on ``target`` where ``moved``.

    Mean-like families: c = h + (t - h) / gain. Order statistics: per moved coordinate the c that
    the modelled honest values (h + sigma z_j) need (``solve_order``); elsewhere c = h. Returns the
    submission (keys of ``h``) and how many moved coordinates the model says stay out of reach.
    """
    out = {k: v.clone() for k, v in h.items()}
    missed = 0
    if rule.family is not Family.ORDER:
        g = rule.gain(cohort, colluders)
        for k, t in target.items():
            out[k] = torch.where(moved[k], h[k] + (t - h[k]) / g, h[k])
        return out, missed
    for k, t in target.items():
        m = moved[k]
        if not bool(m.any()):
            continue
        honest = synthetic_honest(h[k][m].double(), sigma[k][m].double(), max(cohort - colluders, 1))
        c, reached = solve_order(honest, colluders, t[m].double(), rule)
        missed += int((~reached).sum())
        values = out[k].clone()
        values[m] = c.to(values.dtype)
        out[k] = values
    return out, missed
