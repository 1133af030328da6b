"""Exact fake-quantization primitives (Hong et al. 2021, eq. for FQ(t, b); ../REFERENCE §1).

All functions are pure: tensor in, tensor out. Rounding uses the straight-through estimator
(STE): the forward value is the quantized one, the gradient w.r.t. the input is the identity.
Ranges (scales, zero points) are computed without gradient.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def _ste(t: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward ``q``, backward identity to ``t``."""
    return t + (q - t).detach()


def _reduce_dims(t: torch.Tensor, per_channel: bool) -> tuple[int, ...] | None:
    """Dimensions to reduce over: all of them (per-tensor) or all but dim 0 (per-channel)."""
    if not per_channel or t.dim() < 2:
        return None
    return tuple(range(1, t.dim()))


def _amax(t: torch.Tensor, per_channel: bool) -> torch.Tensor:
    dims = _reduce_dims(t, per_channel)
    a = t.detach().abs()
    return a.amax() if dims is None else a.amax(dim=dims, keepdim=True)


def _minmax(t: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dims = _reduce_dims(t, per_channel)
    d = t.detach()
    if dims is None:
        return d.amin(), d.amax()
    return d.amin(dim=dims, keepdim=True), d.amax(dim=dims, keepdim=True)


def quantize_symmetric(t: torch.Tensor, bits: int, amax: torch.Tensor | None = None, per_channel: bool = False) -> torch.Tensor:
    """Quantize ``t`` symmetrically: s = (2^(b-1)-1)/max|t|; q = clamp(round(t*s), -2^(b-1), 2^(b-1)-1); return q/s (STE).

    ``amax`` fixes max|t| (a calibrated range); by default it is taken from ``t``, per tensor or per
    channel (dim 0).
    """
    qmax = 2 ** (bits - 1) - 1
    amax = _amax(t, per_channel) if amax is None else amax.detach()
    scale = qmax / amax.clamp_min(_EPS)
    q = torch.clamp(torch.round(t.detach() * scale), -qmax - 1, qmax) / scale
    return _ste(t, q)


def quantize_asymmetric(
    t: torch.Tensor,
    bits: int,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
    per_channel: bool = False,
) -> torch.Tensor:
    """Quantize ``t`` asymmetrically: s = (2^b-1)/(max-min); zp = round(min*s); q = clamp(round(t*s - zp), 0, 2^b-1); (q+zp)/s.

    ``lo`` and ``hi`` fix min and max (a calibrated range); unless both are given they are taken
    from ``t``, per tensor or per channel (dim 0). Gradients pass straight through (STE).
    """
    levels = 2**bits - 1
    if lo is None or hi is None:
        lo, hi = _minmax(t, per_channel)
    lo, hi = lo.detach(), hi.detach()
    scale = levels / (hi - lo).clamp_min(_EPS)
    zp = torch.round(lo * scale)
    q = torch.clamp(torch.round(t.detach() * scale - zp), 0, levels)
    return _ste(t, (q + zp) / scale)


def fake_quantize(
    t: torch.Tensor,
    bits: int,
    symmetric: bool,
    per_channel: bool = False,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch to the symmetric or asymmetric quantizer; ``lo``/``hi`` fix a calibrated range."""
    if symmetric:
        amax = None if lo is None or hi is None else torch.maximum(lo.abs(), hi.abs())
        return quantize_symmetric(t, bits, amax=amax, per_channel=per_channel)
    return quantize_asymmetric(t, bits, lo=lo, hi=hi, per_channel=per_channel)
