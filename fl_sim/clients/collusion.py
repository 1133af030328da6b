"""Collusion maths on model states (pure functions).

Aggregation-aware collusion: k colluders out of a cohort of n under (equal-weight) FedAvg want the
AGGREGATE to equal a target model w*. Each estimates the benign mean h from its own honest
training; if all k submit s, the aggregate is ((n-k) h + k s) / n, which equals w* for
    s = h + (n / k) (w* - h).
Boosting (model replacement) scales a submission's update around the global model: g + c (s - g).
Stealth: with ||h - g|| the colluders' own benign update norm, keeping ||w* - h|| <= (R - 1) ||h - g|| k/n
keeps the submitted update within R ||h - g|| (triangle inequality), under a server's norm screen.
Omniscient collusion (the adversary sees the round's honest updates) solves the aggregate exactly
(``steer_aggregate``) and bounds the result against the benign updates (``stealth_bound``).
"""

from __future__ import annotations

from typing import cast

import torch

from fl_sim.clients.model_poisoning import clip_norm, project_to_ball

State = dict[str, torch.Tensor]


def aggregation_aware_submission(benign_estimate: State, target: State, cohort: int, colluders: int) -> State:
    """The submission that moves the FedAvg aggregate of the cohort onto ``target``."""
    if not 0 < colluders <= cohort:
        raise ValueError(f"colluders ({colluders}) must be in 1..cohort ({cohort})")
    factor = cohort / colluders
    return {k: benign_estimate[k] + factor * (target[k] - benign_estimate[k]) for k in target}


def boost(global_state: State, submission: State, factor: float) -> State:
    """Scale the update ``submission - global`` by ``factor``."""
    return {k: global_state[k] + factor * (submission[k] - global_state[k]) for k in submission}


def state_distance(a: State, b: State) -> float:
    """Euclidean distance between two model states (floating-point tensors only)."""
    return float(
        torch.sqrt(cast(torch.Tensor, sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a if a[k].is_floating_point())))
    )


@torch.no_grad()
def project_into_ball(model: torch.nn.Module, center: State, radius: float) -> None:
    """Move ``model``'s floating-point state onto the ball of ``radius`` around ``center`` if it is outside."""
    state = model.state_dict()
    dist = state_distance(state, center)
    if dist <= radius:
        return
    scale = radius / dist
    for k, v in state.items():
        if v.is_floating_point():
            v.copy_(center[k] + scale * (v - center[k]))


def steer_aggregate(
    benign: torch.Tensor, benign_weights: torch.Tensor, colluder_weight: float, target: torch.Tensor
) -> torch.Tensor:
    """Omniscient collusion: the update s that puts the example-weighted FedAvg of the round on ``target``.

    Colluders of total example weight ``colluder_weight`` (K) all submit s, so that
    (sum_b w_b u_b + K s) / (sum_b w_b + K) = t  <=>  s = ((sum_b w_b + K) t - sum_b w_b u_b) / K.
    ``benign`` is the (m, d) stack of the honest updates (m may be 0), ``benign_weights`` their
    example weights w_b.
    """
    if colluder_weight <= 0:
        raise ValueError(f"colluder_weight must be positive, got {colluder_weight}")
    w = benign_weights.double()
    total = float(w.sum()) + colluder_weight
    weighted = (w[:, None] * benign.double()).sum(0) if len(w) else torch.zeros_like(target, dtype=torch.float64)
    return ((total * target.double() - weighted) / colluder_weight).to(target.dtype)


def stealth_bound(
    update: torch.Tensor, known: torch.Tensor, max_norm_ratio: float | None, max_distance_ratio: float | None
) -> torch.Tensor:
    """Project a malicious update to look benign against the (m, d) benign updates ``known``.

    First norm <= max_norm_ratio x their median norm (a norm screen / clipping passes it), then
    distance to their mean <= max_distance_ratio x their largest distance to it (distance-based rules
    such as Krum then rank it among the benign); a None ratio skips its bound. Applied in that order,
    the distance bound holds exactly; the projection can lengthen the update again, so with both set
    the norm bound is approximate. The distance bound needs two or more known updates (it is skipped
    with one).
    """
    k = known.double()
    out = update
    if max_norm_ratio is not None:
        out = clip_norm(out, max_norm_ratio * float(k.norm(dim=1).quantile(0.5)))  # the mean of the middle two if m is even
    if max_distance_ratio is not None and len(k) >= 2:  # one known update has no spread to hide in
        mean = k.mean(0)
        radius = max_distance_ratio * float((k - mean).norm(dim=1).max())
        out = project_to_ball(out, mean.to(out.dtype), radius)
    return out
