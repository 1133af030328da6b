"""ARC, adaptive robust clipping (Allouah et al., NeurIPS 2023).

The paper: Allouah, Guerraoui, Gupta, Pinot, Stephan, "Robust Distributed Learning: Tight Error Bounds
and Breakdown Point under Data Heterogeneity", NeurIPS 2023.

A pre-aggregator: the k = floor(2 (f / n) (n - f)) updates of largest norm are scaled down to the norm
of the largest remaining one (the (n - k)-th smallest), as in the authors' ByzFL library; the others
are kept. Counts are unchanged; the mixing is diagonal (the clipping factors).
"""

from __future__ import annotations

import math

import torch

from fl_sim.preaggregators import PREAGGREGATORS, Mixed, PreAggregator, PreAssumedF
from strategies.aggregation_result import check_updates, check_weights, refuse_f_at_least_n


def arc_clipped(n: int, f: int) -> int:
    """k, how many updates ARC clips: floor(2 (f / n) (n - f))."""
    if not 0 <= f < n:
        raise ValueError(f"ARC needs 0 <= f < n, got f={f}, n={n}")
    return math.floor(2 * (f / n) * (n - f) + 1e-12)


def arc_factors(updates: torch.Tensor, f: int) -> torch.Tensor:
    """(n,) float64 scale of each update: threshold / norm for the k largest, 1 for the others."""
    x = check_updates(updates)
    n = x.shape[0]
    k = arc_clipped(n, f)
    norms = x.norm(dim=1)
    factors = torch.ones(n, dtype=torch.float64, device=x.device)
    if k == 0:
        return factors
    threshold = norms.sort().values[n - k - 1]
    big = norms > threshold
    factors[big] = threshold / norms[big]
    return factors


def arc(updates: torch.Tensor, weights: torch.Tensor, f: int) -> Mixed:
    """The ARC step on (n, d) ``updates``."""
    factors = arc_factors(updates, f)
    w = check_weights(weights, updates.shape[0], updates.device)
    return Mixed((factors[:, None] * updates.double()).to(updates.dtype), w, torch.diag(factors))


@PREAGGREGATORS.register("arc", "adaptive robust clipping of the largest floor(2f(n-f)/n) updates (Allouah et al. 2023)")
class ARCStep(PreAggregator[PreAssumedF]):
    """ARC with the assumed f."""

    Params = PreAssumedF

    @classmethod
    def check(cls, params: PreAssumedF, assumed_f: int | None, n: int) -> None:  # type: ignore[override]
        """Refuse f >= n."""
        refuse_f_at_least_n(assumed_f, n)

    def apply(self, updates: torch.Tensor, weights: torch.Tensor, generator: torch.Generator) -> Mixed:
        """Clip the k largest updates to the (n - k)-th norm."""
        return arc(updates, weights, min(self.f, updates.shape[0] - 1))
