"""Backdoor triggers (pure functions on image batches)."""

from __future__ import annotations

import torch


def apply_patch(x: torch.Tensor, size: int, margin: int = 1, value: float | None = None) -> torch.Tensor:
    """A ``size`` x ``size`` square at the bottom-right corner, ``margin`` pixels from the edge,
    set to ``value`` (default: the batch's max value, as in Hong et al. 2021). Returns a copy."""
    if size < 1 or margin < 0 or size + margin > min(x.shape[-2:]):
        raise ValueError(f"trigger of size {size} with margin {margin} does not fit {tuple(x.shape[-2:])} images")
    out = x.clone()
    v = float(x.max()) if value is None else value
    h, w = x.shape[-2:]
    out[..., h - margin - size : h - margin, w - margin - size : w - margin] = v
    return out
