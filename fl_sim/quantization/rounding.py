"""Rounding directions: which of its two neighbouring integers a weight takes, and what moving it costs.

A weight at position ``p = w / step - zero_point`` (in steps) lies between the integers floor(p)
and floor(p) + 1; the deployer's round-to-nearest picks the nearer one. A sub-step move of ``w``
across the boundary floor(p) + 1/2 picks the other one instead: the rounding direction is the only
thing a move shorter than half a step can change (QuRA, arXiv 2510.09647; AdaRound, Nagel et al.
2020, learn the same choice with a relaxed variable; ../REFERENCE §8).

Pure functions on tensors, on a grid fixed beforehand (``intervals.quant_grid``); no model.
"""

from __future__ import annotations

import torch

from fl_sim.quantization.intervals import Intervals, QuantGrid


def positions(w: torch.Tensor, grid: QuantGrid) -> torch.Tensor:
    """Each weight's position on ``grid``, in steps (the integers sit at whole numbers)."""
    return w.detach() / grid.step - grid.zero_point


def nearest(w: torch.Tensor, grid: QuantGrid) -> torch.Tensor:
    """The integer round-to-nearest gives each weight on ``grid`` (int64, clamped to the range)."""
    return torch.clamp(torch.round(positions(w, grid)), grid.qmin, grid.qmax).to(torch.int64)


def neighbour_box(w: torch.Tensor, grid: QuantGrid, free: torch.Tensor) -> Intervals:
    """The box in which each weight of ``free`` can take either of its two neighbouring integers.

    Weight i may move between the centres of floor(p_i) and floor(p_i) + 1 (both inside the
    integer range); weights outside ``free`` are held where they are (lo = hi = w). The returned
    integers are the nearest ones.

    Parameters
    ----------
    w
        The weights (their grid is ``grid``, fixed).
    grid
        The deployer's grid, from the model whose scale the deployer will compute.
    free
        Boolean mask shaped like ``w``: the weights whose rounding may change.
    """
    w = w.detach()
    low = torch.clamp(torch.floor(positions(w, grid)), grid.qmin, grid.qmax - 1)
    lo = ((low + grid.zero_point) * grid.step).expand_as(w)
    hi = ((low + 1 + grid.zero_point) * grid.step).expand_as(w)
    lo, hi = torch.where(free, torch.minimum(lo, w), w), torch.where(free, torch.maximum(hi, w), w)
    return Intervals(q=nearest(w, grid), lo=lo, hi=hi, pinned=~free)


def crossing(w: torch.Tensor, target: torch.Tensor, grid: QuantGrid, margin: float | torch.Tensor) -> torch.Tensor:
    """The value nearest ``w`` that rounds to ``target`` with ``margin`` steps to spare.

    Weights already inside their target's interval shrunk by the margin stay where they are; the
    others move to the near edge of that shrunk interval. ``margin`` is in steps, in [0, 0.5)
    (a float, or a tensor broadcast against ``w``).
    """
    m = torch.as_tensor(margin, dtype=w.dtype, device=w.device)
    if bool((m < 0).any()) or bool((m >= 0.5).any()):
        raise ValueError(f"margin must be in [0, 0.5) steps, got {margin}")
    centre = target.to(w.dtype) + grid.zero_point
    lo, hi = (centre - 0.5 + m) * grid.step, (centre + 0.5 - m) * grid.step
    return torch.minimum(torch.maximum(w.detach(), lo), hi)


def flip_cost(w: torch.Tensor, grid: QuantGrid, margin: float | torch.Tensor) -> torch.Tensor:
    """Per weight, how far (in FP units, signed) it must move to round to its other neighbour with ``margin`` to spare.

    Positive: up to floor(p) + 1; negative: down to floor(p). A weight that the clamp of the range
    keeps from its other neighbour gets an infinite cost.
    """
    p = positions(w, grid)
    here = nearest(w, grid)
    other = torch.where(p >= here.to(p.dtype), here + 1, here - 1)
    inside = (other >= grid.qmin) & (other <= grid.qmax)
    moved = crossing(w, other.clamp(grid.qmin, grid.qmax), grid, margin) - w.detach()
    return torch.where(inside, moved, torch.full_like(moved, float("inf")))
