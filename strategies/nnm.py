"""NNM, nearest-neighbour mixing (Allouah et al., AISTATS 2023).

The paper: "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS 2023.

A pre-aggregator: each update is replaced by the plain mean of its n - f nearest neighbours (itself
included, at distance 0), then any rule aggregates the mixed updates. Ties in distance go to the lower
index. Each output keeps its client's example count.
"""

from __future__ import annotations

import torch

from fl_sim.preaggregators import PREAGGREGATORS, Mixed, PreAggregator, PreAssumedF
from strategies.aggregation_result import check_updates, check_weights, refuse_f_at_least_n


def nnm_mixing(updates: torch.Tensor, f: int) -> torch.Tensor:
    """(n, n) float64 mixing: row i puts 1 / (n - f) on the n - f updates nearest to update i."""
    x = check_updates(updates)
    n = x.shape[0]
    if not 0 <= f < n:
        raise ValueError(f"NNM needs 0 <= f < n, got f={f}, n={n}")
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    d.fill_diagonal_(-1.0)  # itself first, whatever the float noise
    nearest = torch.argsort(d, dim=1, stable=True)[:, : n - f]
    mixing = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    mixing.scatter_(1, nearest, 1.0 / (n - f))
    return mixing


def nnm(updates: torch.Tensor, weights: torch.Tensor, f: int) -> Mixed:
    """The NNM step on (n, d) ``updates``: each replaced by the mean of its n - f nearest neighbours."""
    mixing = nnm_mixing(updates, f)
    w = check_weights(weights, updates.shape[0], updates.device)
    return Mixed((mixing @ updates.double()).to(updates.dtype), w, mixing)


@PREAGGREGATORS.register("nnm", "nearest-neighbour mixing: each update -> mean of its n-f nearest (Allouah et al. 2023)")
class NNMStep(PreAggregator[PreAssumedF]):
    """NNM with the assumed f."""

    Params = PreAssumedF

    @classmethod
    def check(cls, params: PreAssumedF, assumed_f: int | None, n: int) -> None:  # type: ignore[override]
        """Refuse f >= n."""
        refuse_f_at_least_n(assumed_f, n)

    def apply(self, updates: torch.Tensor, weights: torch.Tensor, generator: torch.Generator) -> Mixed:
        """Mix each update with its n - f nearest neighbours."""
        return nnm(updates, weights, min(self.f, updates.shape[0] - 1))
