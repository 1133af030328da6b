"""Centered clipping (Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
Optimization", ICML 2021), their Eq. (CC).

Starting from a center v (the previous round's aggregate momentum, passed in by the caller; zero by
default), L iterations of

    v <- v + sum_i w_i clip(x_i - v, tau),   clip(z, tau) = z min(1, tau / ||z||),

with w the normalized example counts (the paper's 1/n for equal counts). Each step moves v by at most
tau, and a single client by at most w_i tau, however far its update lies.
"""

from __future__ import annotations

import torch

from strategies.aggregation_result import Aggregate, check_updates, check_vector, check_weights, weighted_mean
from strategies.norm_clipping import clip_to_norm


def centered_clipping(
    updates: torch.Tensor,
    weights: torch.Tensor,
    center: torch.Tensor | None,
    tau: float,
    *,
    iterations: int = 1,
) -> Aggregate:
    """Centered-clipping aggregate of ``updates`` (n, d) around ``center`` (d,) (None: zero) with radius
    ``tau`` (``math.inf`` gives the weighted mean).

    ``weights`` in the result are the normalized example weights; ``clipped`` marks the clients whose
    offset x_i - v was clipped in the last iteration.
    """
    x = check_updates(updates)
    w = check_weights(weights, x.shape[0], x.device)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    v = torch.zeros_like(x[0]) if center is None else check_vector(center, x.shape[1], x.device, "center")
    clipped = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(iterations):
        offsets, clipped = clip_to_norm(x - v, tau)
        step, w = weighted_mean(offsets, w)
        v = v + step
    return Aggregate(update=v.to(updates.dtype), weights=w, clipped=clipped)
