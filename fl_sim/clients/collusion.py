"""Collusion maths on model states (pure functions).

Aggregation-aware collusion: k colluders out of a cohort of n under (equal-weight) FedAvg want the
AGGREGATE to equal a target model w*. Each estimates the benign mean h from its own honest
training; if all k submit s, the aggregate is ((n-k) h + k s) / n, which equals w* for
    s = h + (n / k) (w* - h).
Boosting (model replacement) scales a submission's update around the global model: g + c (s - g).
Stealth: with ||h - g|| the colluders' own benign update norm, keeping ||w* - h|| <= (R - 1) ||h - g|| k/n
keeps the submitted update within R ||h - g|| (triangle inequality), under a server's norm screen.
"""

from __future__ import annotations

import torch

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
    return float(torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a if a[k].is_floating_point())))


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
