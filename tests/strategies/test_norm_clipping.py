"""Norm clipping with weak DP (Sun et al. 2019) against hand-computed cases and the exact noise draw."""

import math

import pytest
import torch

from strategies.norm_clipping import clip_to_norm, norm_clipping

F64 = torch.float64


def test_clip_to_norm_bound_holds_and_short_rows_are_untouched():
    x = torch.randn(50, 20, generator=torch.Generator().manual_seed(1), dtype=F64) * torch.linspace(0.1, 3, 50)[:, None]
    out, clipped = clip_to_norm(x, 5.0)
    norms_in, norms_out = torch.linalg.vector_norm(x, dim=1), torch.linalg.vector_norm(out, dim=1)
    assert clipped.tolist() == (norms_in > 5.0).tolist() and 0 < int(clipped.sum()) < 50
    assert torch.allclose(norms_out[clipped], torch.full_like(norms_out[clipped], 5.0), rtol=1e-14, atol=0)
    assert torch.equal(out[~clipped], x[~clipped])
    # Clipping only rescales: the direction is kept.
    assert torch.allclose(out[clipped] / norms_out[clipped, None], x[clipped] / norms_in[clipped, None], atol=1e-15)


def test_clip_to_norm_zero_and_infinite_bounds():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=F64)
    out, clipped = clip_to_norm(x, 0.0)
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0]] and clipped.tolist() == [True, False]
    out, clipped = clip_to_norm(x, math.inf)
    assert torch.equal(out, x) and not bool(clipped.any())


def test_hand_computed_weighted_mean_of_clipped_updates():
    # M = 2: (3, 4) -> (1.2, 1.6); (0, 1) stays; (6, 8) -> (1.2, 1.6).
    # Weights 1, 1, 2 -> (1 (1.2, 1.6) + (0, 1) + 2 (1.2, 1.6)) / 4 = (0.9, 1.45).
    updates = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    agg = norm_clipping(updates, torch.tensor([1.0, 1.0, 2.0]), 2.0)
    assert torch.allclose(agg.update, torch.tensor([0.9, 1.45]), atol=1e-7)
    assert agg.update.dtype == torch.float32
    assert agg.weights.tolist() == [0.25, 0.25, 0.5]
    assert agg.clipped.tolist() == [True, False, True]


def test_default_bound_is_the_median_norm_averaging_the_middle_pair():
    # Norms 1, 2, 3, 4: median 2.5, so the last two are cut to 2.5: mean (1 + 2 + 2.5 + 2.5) / 4 = 2.
    updates = torch.tensor([[1.0, 0.0], [0.0, -2.0], [3.0, 0.0], [0.0, 4.0]], dtype=F64)
    agg = norm_clipping(updates, torch.ones(4), None)
    assert agg.clipped.tolist() == [False, False, True, True]
    assert torch.allclose(agg.update, torch.tensor([(1 + 2.5) / 4, (-2 + 2.5) / 4], dtype=F64), atol=1e-15)


def test_aggregate_norm_never_exceeds_the_bound():
    g = torch.Generator().manual_seed(2)
    updates = 100 * torch.randn(9, 30, generator=g, dtype=F64) + 40
    agg = norm_clipping(updates, torch.rand(9, generator=g, dtype=F64), 3.0)
    assert bool(agg.clipped.all())
    assert float(torch.linalg.vector_norm(agg.update)) <= 3.0 * (1 + 1e-12)


def test_noise_is_the_seeded_gaussian_draw_with_the_requested_std():
    d, std = 200_000, 0.3
    updates = torch.zeros(3, d, dtype=F64)
    agg = norm_clipping(updates, torch.ones(3), 1.0, noise_std=std, generator=torch.Generator().manual_seed(7))
    expected = std * torch.randn(d, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert torch.equal(agg.update, expected)
    # Sample std of 2e5 draws: relative standard error 1/sqrt(2 d) ~ 0.16 %.
    assert float(agg.update.std()) == pytest.approx(std, rel=0.01)
    assert abs(float(agg.update.mean())) < 5 * std / math.sqrt(d)
    again = norm_clipping(updates, torch.ones(3), 1.0, noise_std=std, generator=torch.Generator().manual_seed(7))
    assert torch.equal(agg.update, again.update)


def test_parameter_validation():
    u, w = torch.ones(2, 3), torch.ones(2)
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match=f"max_norm must be >= 0 or None, got {bad}"):
            norm_clipping(u, w, bad)
    for bad in (-0.1, math.inf):
        with pytest.raises(ValueError, match=f"noise_std must be finite and >= 0, got {bad}"):
            norm_clipping(u, w, 1.0, noise_std=bad)
    with pytest.raises(ValueError, match="torch.Generator is needed"):
        norm_clipping(u, w, 1.0, noise_std=0.1)
