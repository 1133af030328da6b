"""Quantization intervals against brute-force enumeration and fl_sim's own fake quantizer."""

import itertools

import pytest
import torch

from fl_sim.quantization.intervals import (
    WeightQuantizer,
    boundary_distance,
    integers,
    intersect,
    intervals,
    pin_scale,
    quant_grid,
    range_box,
)
from fl_sim.quantization.primitives import fake_quantize

CASES = [WeightQuantizer(b, sym, pc) for b, sym, pc in itertools.product((2, 4, 8), (True, False), (False, True))]


def _tensor(seed: int) -> torch.Tensor:
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("q", CASES, ids=str)
def test_integers_dequantize_to_the_fake_quantizer(q):
    w = _tensor(0)
    g = quant_grid(w, q)
    deq = (integers(w, q).double() + g.zero_point) * g.step
    assert torch.allclose(deq, fake_quantize(w, q.bits, q.symmetric, per_channel=q.per_channel), atol=1e-12)


def _integer_of(w: torch.Tensor, q: WeightQuantizer, i: tuple, value: float) -> tuple[int, torch.Tensor]:
    """Brute force: put ``value`` at position ``i``, quantize the whole tensor, read its integer and grid."""
    v = w.clone()
    v[i] = value
    return int(integers(v, q)[i]), quant_grid(v, q).step


@pytest.mark.parametrize("q", CASES, ids=str)
def test_intervals_equal_the_enumerated_sets_of_values_keeping_the_integer_and_the_scale(q):
    w = _tensor(1)
    box = intervals(w, q, margin=0.0)
    step0 = quant_grid(w, q).step
    for i in itertools.product(range(3), range(5)):
        if box.pinned[i]:
            assert box.lo[i] == box.hi[i] == w[i]
            continue
        lo, hi = float(box.lo[i]), float(box.hi[i])
        width = hi - lo
        # Every value inside keeps the integer and the scale ...
        for t in torch.linspace(0.001, 0.999, 41, dtype=torch.float64):
            val = lo + float(t) * width
            got, step = _integer_of(w, q, i, val)
            assert got == int(box.q[i]) and torch.equal(step, step0)
        # ... and values just beyond each end lose one or the other.
        for val in (lo - 1e-6 * (1 + abs(lo)), hi + 1e-6 * (1 + abs(hi))):
            got, step = _integer_of(w, q, i, val)
            assert got != int(box.q[i]) or not torch.equal(step, step0)


@pytest.mark.parametrize("q", CASES, ids=str)
def test_margin_shrinks_each_inner_interval_by_margin_steps_and_keeps_the_weight_inside(q):
    w = _tensor(2)
    plain, shrunk = intervals(w, q, 0.0), intervals(w, q, 0.2)
    step = quant_grid(w, q).step.expand_as(w)
    inner = ~plain.pinned & (plain.hi - plain.lo > 0.99 * step)  # intervals not clipped by the range's ends
    assert torch.allclose((shrunk.lo - plain.lo)[inner], 0.2 * step[inner])
    assert torch.allclose((plain.hi - shrunk.hi)[inner], 0.2 * step[inner])
    assert bool((shrunk.lo <= shrunk.hi).all()) and bool((plain.contains(w)).all())
    # A perturbation below the margin from anywhere inside the shrunk box leaves every integer alone.
    g = torch.Generator().manual_seed(3)
    inside = shrunk.lo + torch.rand(w.shape, generator=g, dtype=w.dtype) * (shrunk.hi - shrunk.lo)
    noisy = inside + (torch.rand(w.shape, generator=g, dtype=w.dtype) - 0.5) * 0.38 * step * (~shrunk.pinned)
    assert torch.equal(integers(noisy, q), plain.q)


@pytest.mark.parametrize("q", CASES, ids=str)
def test_boundary_distance_by_enumerating_the_boundaries(q):
    w = _tensor(4)
    g = quant_grid(w, q)
    pos = (w / g.step - g.zero_point).flatten()
    bounds = torch.arange(g.qmin - 0.5, g.qmax + 0.51, 1.0, dtype=w.dtype)
    want = (pos[:, None] - bounds[None, :]).abs().min(dim=1).values.clamp(max=0.5)
    assert torch.allclose(boundary_distance(w, q).flatten(), want, atol=1e-9)


def test_margin_out_of_range_is_refused():
    with pytest.raises(ValueError, match="margin"):
        intervals(_tensor(0), WeightQuantizer(4), 0.6)
    with pytest.raises(ValueError, match="bits"):
        WeightQuantizer(1)


def test_intersecting_int8_and_int4_keeps_both_integers():
    w = _tensor(5)
    q8, q4 = WeightQuantizer(8), WeightQuantizer(4)
    box = intersect([intervals(w, q8, 0.0), intervals(w, q4, 0.0)])  # both hold w: never empty
    g = torch.Generator().manual_seed(6)
    for _ in range(20):
        v = box.lo + torch.rand(w.shape, generator=g, dtype=w.dtype) * (box.hi - box.lo)
        assert torch.equal(integers(v, q8), integers(w, q8)) and torch.equal(integers(v, q4), integers(w, q4))


@pytest.mark.parametrize("q", CASES, ids=str)
def test_pin_scale_puts_one_extreme_per_side_steps_beyond_the_rest(q):
    w = _tensor(7)
    moved = torch.rand(w.shape, generator=torch.Generator().manual_seed(8), dtype=w.dtype)
    pinned = pin_scale(w, q, 0.5, moved)
    rows = pinned.reshape(pinned.shape[0], -1) if q.per_channel else pinned.reshape(1, -1)
    old = w.reshape(rows.shape)
    changed = (rows != old).sum(dim=1)
    assert bool((changed == (1 if q.symmetric else 2)).all())
    # The range grew by half an old step on the pinned side(s).
    g = quant_grid(old, WeightQuantizer(q.bits, q.symmetric, True))
    top = rows.abs().amax(1) if q.symmetric else rows.amax(1)
    want = old.abs().amax(1) + 0.5 * g.step.flatten() if q.symmetric else old.amax(1) + 0.5 * g.step.flatten()
    assert torch.allclose(top, want)


def test_range_box_keeps_the_grid_whatever_the_weights_do_inside():
    w = _tensor(9)
    q = WeightQuantizer(4)
    box = range_box(w, q, 0.25)
    g = torch.Generator().manual_seed(10)
    for _ in range(10):
        v = box.lo + torch.rand(w.shape, generator=g, dtype=w.dtype) * (box.hi - box.lo)
        assert torch.allclose(quant_grid(v, q).step, quant_grid(w, q).step)
