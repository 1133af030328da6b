"""Activation-range observers (pure functions on a 1-D sample of a layer's inputs).

- min-max: the full observed range (PyTorch's MinMaxObserver);
- percentile: the [100-p, p] percentiles, clipping rare outliers;
- MSE: the symmetric shrink of the min-max range, among ``candidates`` evenly spaced factors, whose
  b-bit asymmetric quantization of the sample has the least mean squared error.
"""

from __future__ import annotations

import torch

from fl_sim.config.precision import Observer
from fl_sim.quantization.primitives import quantize_asymmetric

__all__ = ["Observer", "minmax_range", "mse_range", "observe", "percentile_range"]


def minmax_range(sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the full observed range (min, max) of ``sample`` (PyTorch's MinMaxObserver)."""
    return sample.amin(), sample.amax()


def percentile_range(sample: torch.Tensor, percentile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the [100 - p, p] percentiles of ``sample`` for p = ``percentile`` in (50, 100], clipping rare outliers."""
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    q = torch.tensor([1.0 - percentile / 100.0, percentile / 100.0], dtype=sample.dtype, device=sample.device)
    lo, hi = torch.quantile(sample, q)
    return lo, hi


def mse_range(sample: torch.Tensor, bits: int, candidates: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the symmetric shrink of the min-max range whose ``bits``-bit quantization of ``sample`` has the least MSE.

    Both ends are scaled by the same factor, one of ``candidates`` evenly spaced factors in
    (0, 1] (1/candidates, ..., 1); the error is that of asymmetric quantization on that range.
    """
    lo, hi = minmax_range(sample)
    factors = torch.linspace(1.0 / candidates, 1.0, candidates, dtype=sample.dtype, device=sample.device)
    errors = torch.stack([((quantize_asymmetric(sample, bits, lo * f, hi * f) - sample) ** 2).mean() for f in factors])
    best = factors[int(errors.argmin())]
    return lo * best, hi * best


def observe(sample: torch.Tensor, observer: Observer, bits: int, percentile: float = 99.99) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (lo, hi) activation range that ``observer`` picks from ``sample``.

    ``bits`` matters to the MSE observer only, ``percentile`` to the percentile observer only.
    """
    if observer is Observer.MINMAX:
        return minmax_range(sample)
    if observer is Observer.PERCENTILE:
        return percentile_range(sample, percentile)
    return mse_range(sample, bits)
