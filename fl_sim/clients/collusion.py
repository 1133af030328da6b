"""Collusion maths on model states (pure functions).

Aggregation-aware collusion: k colluders out of a cohort of n under (equal-weight) FedAvg want the
AGGREGATE to equal a target model w*. Each estimates the benign mean h from its own honest
training; if all k submit s, the aggregate is ((n-k) h + k s) / n, which equals w* for
    s = h + (n / k) (w* - h).
Boosting (model replacement) scales a submission's update around the global model: g + c (s - g).
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
