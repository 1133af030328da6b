"""Centered clipping, Eq. (CC) of Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust Optimization", ICML 2021.

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
    """Centered-clipping aggregate of ``updates`` (n, d) around ``center``.

    ``weights`` in the result are the normalized example weights; ``clipped`` marks the clients whose
    offset x_i - v was clipped in the last iteration.

    Parameters
    ----------
    updates : torch.Tensor
        (n, d) client updates.
    weights : torch.Tensor
        (n,) nonnegative example counts.
    center : torch.Tensor or None
        (d,) starting center v (the previous aggregate); None starts from zero.
    tau : float
        Clipping radius, > 0 (``math.inf`` gives the weighted mean).
    iterations : int
        Number L of clipping steps, >= 1.
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


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.rule_replicas import REPLICAS  # noqa: E402
from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    ServerKnowledge,
    TensorDefense,
)


class CenteredClippingParams(NoParams):
    """The clipping radius and the number of clipping iterations."""

    tau: float | None = Field(
        None, gt=0, description="clipping radius (default: the median distance of the updates to the center)"
    )
    iterations: int = Field(1, ge=1)


@STRATEGIES.register("centered_clipping", "centered clipping around the previous aggregate (Karimireddy et al. 2021)")
class CenteredClippingDefense(TensorDefense[CenteredClippingParams]):
    """Centered clipping; the previous round's aggregate is the center (their momentum)."""

    Params = CenteredClippingParams

    def __init__(self, knowledge: ServerKnowledge) -> None:
        super().__init__(knowledge)
        self.center: torch.Tensor | None = None

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Clip around the previous aggregate; remember the new one."""
        center = self.center
        if center is not None and center.shape[0] != r.updates.shape[1]:
            center = None
        base = center if center is not None else torch.zeros_like(r.updates[0])
        p = self.params
        tau = p.tau if p.tau is not None else float((r.updates.double() - base.double()).norm(dim=1).median())
        agg = centered_clipping(r.updates, r.weights, center, max(tau, 1e-12), iterations=p.iterations)
        self.center = agg.update.detach()
        return agg


@REPLICAS.register(
    "centered_clipping", "one clipping step around 0 with tau = the median norm (the server's previous aggregate is unknown)"
)
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    tau = max(float(updates.double().norm(dim=1).median()), 1e-12)
    return centered_clipping(updates.double(), counts, None, tau).update
