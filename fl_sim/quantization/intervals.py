"""Quantization intervals: each weight's integer under the deployer's quantizer, and the FP values that keep it.

For each weight, the integer the deployer's quantizer gives it and the interval of full-precision
values mapped to that same integer, with the scale held fixed (Egashira et al., NeurIPS 2024,
"Exploiting LLM Quantization"; ../REFERENCE §8).

The quantizer is the weight quantizer of fl_sim's fake quantization (primitives.py): symmetric
``q = clamp(round(w / step), -2^(b-1), 2^(b-1)-1)`` with ``step = max|w| / (2^(b-1)-1)``, or
asymmetric ``q = clamp(round(w / step - zp), 0, 2^b-1)`` with ``step = (max-min) / (2^b-1)`` and
``zp = round(min / step)``; per tensor or per output channel. The scale depends on the extreme
element(s) only, so it stays fixed while those are pinned and every other weight stays within the
range they span. Integer ``q`` then covers ``[(q + zp - 1/2) step, (q + zp + 1/2) step]``; a margin
``m`` (a fraction of a step) shrinks that to ``[(q + zp - 1/2 + m) step, (q + zp + 1/2 - m) step]``,
so that any perturbation smaller than ``m`` steps (aggregation error, floating-point order, a
different backend's tie rule) leaves the integer unchanged.

Pure functions on tensors; no model, no Flower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

_EPS = 1e-12
PIN_REACH = 0.9  # pin_scale picks its weight among those within (1 - PIN_REACH) of the range's end


@dataclass(frozen=True)
class WeightQuantizer:
    """The deployer's weight quantizer: bit width, symmetric or not, per tensor or per channel."""

    bits: int
    symmetric: bool = True
    per_channel: bool = False

    def __post_init__(self) -> None:
        """Check that ``bits`` is an integer in 2..16; ValueError otherwise."""
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 16:
            raise ValueError(f"bits must be an integer in 2..16, got {self.bits!r}")


@dataclass(frozen=True)
class QuantGrid:
    """A tensor's quantization grid.

    ``step`` and ``zero_point`` broadcast against the tensor; [qmin, qmax] is the integer range.
    """

    step: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int


def _reduce(t: torch.Tensor, per_channel: bool, fn: str) -> torch.Tensor:
    if not per_channel or t.dim() < 2:
        return cast(torch.Tensor, getattr(t, fn)())
    return cast(torch.Tensor, getattr(t, fn)(dim=tuple(range(1, t.dim())), keepdim=True))


def quant_grid(w: torch.Tensor, quantizer: WeightQuantizer) -> QuantGrid:
    """Return the grid ``quantizer`` puts on ``w`` (the same arithmetic as fl_sim's fake quantization)."""
    w = w.detach()
    b = quantizer.bits
    if quantizer.symmetric:
        qmax = 2 ** (b - 1) - 1
        inv = qmax / _reduce(w.abs(), quantizer.per_channel, "amax").clamp_min(_EPS)
        return QuantGrid(step=1.0 / inv, zero_point=torch.zeros_like(inv), qmin=-qmax - 1, qmax=qmax)
    levels = 2**b - 1
    lo, hi = _reduce(w, quantizer.per_channel, "amin"), _reduce(w, quantizer.per_channel, "amax")
    inv = levels / (hi - lo).clamp_min(_EPS)
    return QuantGrid(step=1.0 / inv, zero_point=torch.round(lo * inv), qmin=0, qmax=levels)


def integers(w: torch.Tensor, quantizer: WeightQuantizer, grid: QuantGrid | None = None) -> torch.Tensor:
    """Each weight's integer (int64) on ``grid`` (default: the grid of ``w`` itself)."""
    g = quant_grid(w, quantizer) if grid is None else grid
    inv = 1.0 / g.step
    return torch.clamp(torch.round(w.detach() * inv - g.zero_point), g.qmin, g.qmax).to(torch.int64)


def boundary_distance(w: torch.Tensor, quantizer: WeightQuantizer, grid: QuantGrid | None = None) -> torch.Tensor:
    """Each weight's distance to the nearest rounding boundary, in steps.

    0 = on a boundary, 0.5 = at the centre of its interval. Weights beyond the clamped range count
    from the last boundary inside it. ``grid`` defaults to the grid of ``w`` itself.
    """
    g = quant_grid(w, quantizer) if grid is None else grid
    pos = w.detach() / g.step - g.zero_point  # in steps, integers at the interval centres
    q = torch.clamp(torch.round(pos), g.qmin, g.qmax)
    return (0.5 - (pos - q).abs()).clamp_min(0.0)


@dataclass(frozen=True)
class Intervals:
    """Per weight: the integer ``q`` and the closed FP interval [lo, hi] that keeps it.

    The intervals have the margin applied and the scale pinned; ``pinned`` marks the extreme
    elements that fix the scale.
    """

    q: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    pinned: torch.Tensor

    def contains(self, w: torch.Tensor) -> torch.Tensor:
        """Return a boolean mask: True where ``w`` lies in its closed interval [lo, hi]."""
        return (w >= self.lo) & (w <= self.hi)

    def project(self, w: torch.Tensor) -> torch.Tensor:
        """Return the closest point of the box to ``w`` (coordinate-wise clamp)."""
        return torch.minimum(torch.maximum(w, self.lo), self.hi)


def _pinned(w: torch.Tensor, quantizer: WeightQuantizer) -> torch.Tensor:
    """Mark the elements whose value sets the scale.

    These are the max-|w| ones (symmetric), the min and max ones (asymmetric), per tensor or per channel.
    """
    if quantizer.symmetric:
        a = w.abs()
        return a == _reduce(a, quantizer.per_channel, "amax")
    return (w == _reduce(w, quantizer.per_channel, "amin")) | (w == _reduce(w, quantizer.per_channel, "amax"))


def _range(w: torch.Tensor, quantizer: WeightQuantizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the range the pinned extremes span: [-max|w|, max|w|] (symmetric) or [min, max]."""
    if quantizer.symmetric:
        amax = _reduce(w.abs(), quantizer.per_channel, "amax")
        return -amax, amax
    return _reduce(w, quantizer.per_channel, "amin"), _reduce(w, quantizer.per_channel, "amax")


def pin_scale(w: torch.Tensor, quantizer: WeightQuantizer, steps: float, spread: torch.Tensor | None = None) -> torch.Tensor:
    """Return a copy of ``w`` whose scale is set by chosen extremes standing ``steps`` steps beyond the current range.

    No perturbation smaller than that gap then lets another weight take over the scale. Per tensor
    (or channel) and side, the new extreme is the weight of least ``spread`` (its expected
    perturbation; default: the current extreme) among those within (1 - PIN_REACH) of the range of
    that side's end, so the move stays short.

    Parameters
    ----------
    w : torch.Tensor
        The weight tensor (not modified).
    quantizer : WeightQuantizer
        The deployer's quantizer; symmetric: one extreme, on either sign; asymmetric: both ends.
    steps : float
        The gap, in steps of the current grid, between the chosen extreme and the current range.
    spread : torch.Tensor or None
        Each weight's expected perturbation (shaped like ``w``); None: pick the current extreme.

    Returns
    -------
    torch.Tensor
        The new weights, of ``w``'s shape: only the chosen extremes differ from ``w``.
    """
    w = w.detach()
    per_row = quantizer.per_channel and w.dim() >= 2
    rows = w.reshape(w.shape[0], -1) if per_row else w.reshape(1, -1)
    row_q = WeightQuantizer(quantizer.bits, quantizer.symmetric, per_channel=True)
    floor, ceil = _range(rows, row_q)
    step = quant_grid(rows, row_q).step
    centre = (floor + ceil) / 2
    out = rows.clone()
    inf = torch.full_like(rows, float("inf"))
    noise = None if spread is None else spread.detach().reshape(rows.shape).to(rows.dtype)
    if quantizer.symmetric:
        # either sign may set the scale: push the chosen weight outward on its own side
        sides = [(rows.abs(), ceil, torch.where(rows < 0, -1.0, 1.0).to(rows.dtype))]
    else:
        up = torch.ones_like(rows)
        sides = [(rows - centre, ceil - centre, up), (centre - rows, centre - floor, -up)]
    for reach, half, direction in sides:
        score = torch.where(reach >= PIN_REACH * half, -reach if noise is None else noise, inf)
        pick = score.argmin(dim=1, keepdim=True)
        value = centre + direction.gather(1, pick) * (half + steps * step)
        out.scatter_(1, pick, value.to(out.dtype))
    return out.reshape(w.shape)


def range_box(w: torch.Tensor, quantizer: WeightQuantizer, guard: float = 0.0) -> Intervals:
    """Return the box that keeps ``w``'s grid (scale and zero point) but not its integers.

    The pinned extremes are fixed; every other weight is free up to the centre of the outermost
    integer whose interval ends at least ``guard`` steps inside the range (so that no other weight
    ties with, or comes within that gap of, a pinned extreme, and none is parked on a rounding boundary).
    """
    w = w.detach()
    floor, ceil = _range(w, quantizer)
    g = quant_grid(w, quantizer)
    top = torch.floor(ceil / g.step - g.zero_point - guard - 0.5 + 1e-9)
    bottom = torch.ceil(floor / g.step - g.zero_point + guard + 0.5 - 1e-9)
    pinned = _pinned(w, quantizer)
    lo = torch.where(pinned, w, ((bottom + g.zero_point) * g.step).expand_as(w))
    hi = torch.where(pinned, w, ((top + g.zero_point) * g.step).expand_as(w))
    return Intervals(q=integers(w, quantizer), lo=lo, hi=hi, pinned=pinned)


def intervals(
    w: torch.Tensor, quantizer: WeightQuantizer, margin: float | torch.Tensor = 0.0, edge: float | torch.Tensor | None = None
) -> Intervals:
    """Return the interval of each weight of ``w`` under ``quantizer`` with the scale pinned, shrunk by ``margin`` steps.

    The pinned extremes keep their exact value; every other interval is clamped to the pinned range
    shrunk by ``edge`` steps (an end interval left empty by that collapses to its midpoint).

    Parameters
    ----------
    w : torch.Tensor
        The weight tensor.
    quantizer : WeightQuantizer
        The deployer's quantizer.
    margin : float or torch.Tensor
        Steps taken off each side of every interval: a float, or a tensor broadcast against ``w``;
        in [0, 0.5], else ValueError.
    edge : float or torch.Tensor or None
        Steps kept between the non-pinned intervals and the pinned range's ends (like ``margin``, a
        float or a tensor broadcast against ``w``; default: the margin).

    Returns
    -------
    Intervals
        Each weight's integer, its interval [lo, hi] and the mask of pinned extremes.
    """
    m = torch.as_tensor(margin, dtype=w.dtype, device=w.device)
    if bool((m < 0).any()) or bool((m > 0.5).any()):
        raise ValueError(f"margin must be in [0, 0.5] steps, got {margin}")
    w = w.detach()
    g = quant_grid(w, quantizer)
    q = integers(w, quantizer, g)
    centre = q.to(w.dtype) + g.zero_point
    lo, hi = (centre - 0.5 + m) * g.step, (centre + 0.5 - m) * g.step
    # Non-pinned weights also keep the margin from the range's ends, so that none of them can
    # overtake a pinned extreme (and change the scale) under a perturbation smaller than the margin.
    floor, ceil = _range(w, quantizer)
    e = m if edge is None else torch.as_tensor(edge, dtype=w.dtype, device=w.device)
    lo, hi = torch.maximum(lo, floor + e * g.step), torch.minimum(hi, ceil - e * g.step)
    # With a margin (or edge) over 1/4 step the end intervals can come out empty: take their midpoint.
    mid = (lo + hi) / 2
    empty = lo > hi
    lo, hi = torch.where(empty, mid, lo), torch.where(empty, mid, hi)
    pinned = _pinned(w, quantizer)
    return Intervals(q=q, lo=torch.where(pinned, w, lo), hi=torch.where(pinned, w, hi), pinned=pinned)


def intersect(boxes: list[Intervals]) -> Intervals:
    """Intersect boxes of the same tensor: the weights that keep every box's integer at once.

    Several deployer formats are attacked together, as in "Mind the Gap", Egashira et al. 2025.
    Where the boxes do not overlap (possible only with margins), the first box's bounds are kept.
    The result carries the first box's integers and marks as pinned what any box pins.
    """
    if not boxes:
        raise ValueError("intersect needs at least one box")
    lo, hi = boxes[0].lo, boxes[0].hi
    for b in boxes[1:]:
        lo2, hi2 = torch.maximum(lo, b.lo), torch.minimum(hi, b.hi)
        ok = lo2 <= hi2
        lo, hi = torch.where(ok, lo2, lo), torch.where(ok, hi2, hi)
    pinned = boxes[0].pinned
    for b in boxes[1:]:
        pinned = pinned | b.pinned
    return Intervals(q=boxes[0].q, lo=lo, hi=hi, pinned=pinned)
