"""Centered clipping (Karimireddy et al., ICML 2021) against the weighted mean and hand-computed steps."""

import math

import pytest
import torch

from strategies.centered_clipping import centered_clipping

F64 = torch.float64


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(6, 4, generator=g, dtype=F64),
        torch.rand(6, generator=g, dtype=F64) + 0.5,
        torch.randn(4, generator=g, dtype=F64),
    )


@pytest.mark.parametrize("iterations", [1, 3])
def test_infinite_tau_is_the_weighted_mean_from_any_center(iterations):
    x, w, center = _data()
    agg = centered_clipping(x, w, center, math.inf, iterations=iterations)
    assert torch.allclose(agg.update, (w / w.sum()) @ x, atol=1e-14)
    assert torch.allclose(agg.weights, w / w.sum()) and not bool(agg.clipped.any())


def test_outlier_moves_the_center_by_at_most_its_weight_times_tau():
    center = torch.tensor([1.0, -1.0, 0.5], dtype=F64)
    offsets = torch.tensor([[0.1, 0.0, 0.0], [0.0, -0.2, 0.1], [0.0, 0.0, 0.0]], dtype=F64)
    outlier = center + torch.tensor([1e6, 0.0, 0.0], dtype=F64)
    x = torch.cat([center + offsets, outlier[None]])
    w = torch.tensor([1.0, 1.0, 1.0, 1.0])
    tau = 0.5
    agg = centered_clipping(x, w, center, tau)
    # Honest offsets lie within tau and pass unchanged; the outlier's is cut to tau e_1.
    expected = center + 0.25 * offsets.sum(dim=0) + 0.25 * tau * torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    assert torch.allclose(agg.update, expected, atol=1e-15)
    assert agg.clipped.tolist() == [False, False, False, True]


def test_each_step_is_bounded_by_tau():
    x, w, center = _data(1)
    x = 50 * x
    agg = centered_clipping(x, w, center, 0.3)
    assert bool(agg.clipped.all())
    assert float(torch.linalg.vector_norm(agg.update - center)) <= 0.3 * (1 + 1e-12)


def test_iterations_chain_and_default_center_is_zero():
    x, w, _ = _data(2)
    two = centered_clipping(x, w, None, 0.7, iterations=2)
    one = centered_clipping(x, w, torch.zeros(4, dtype=F64), 0.7)
    chained = centered_clipping(x, w, one.update, 0.7)
    assert torch.allclose(two.update, chained.update, atol=1e-15)
    assert torch.equal(two.clipped, chained.clipped)


def test_parameter_validation():
    x, w, _ = _data()
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match=f"tau must be > 0, got {bad}"):
            centered_clipping(x, w, None, bad)
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        centered_clipping(x, w, None, 1.0, iterations=0)
    with pytest.raises(ValueError, match=r"center must have shape \(4,\) to match updates, got \(3,\)"):
        centered_clipping(x, w, torch.zeros(3), 1.0)
