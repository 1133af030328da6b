"""RFA geometric median (Pillutla et al., IEEE TSP 2022): Weiszfeld fixed points and scipy's optimiser."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from strategies.rfa import geometric_median

F64 = torch.float64


def _objective(x: np.ndarray, w: np.ndarray, z: np.ndarray) -> float:
    return float(w @ np.linalg.norm(x - z, axis=1))


def test_equilateral_triangle_gives_its_centroid():
    angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
    pts = torch.tensor([[3 + math.cos(a), -2 + math.sin(a)] for a in angles], dtype=F64)
    agg = geometric_median(pts, torch.ones(3))
    assert torch.allclose(agg.update, torch.tensor([3.0, -2.0], dtype=F64), atol=1e-12)
    assert torch.allclose(agg.weights, torch.full((3,), 1 / 3, dtype=F64), atol=1e-12)


def test_collinear_odd_count_gives_the_middle_point():
    direction = torch.tensor([1.0, 2.0, -2.0], dtype=F64) / 3
    pts = torch.stack([t * direction for t in (0.0, 1.0, 10.0)])  # mean at t = 11/3, median at t = 1
    agg = geometric_median(pts, torch.ones(3), tol=1e-14, max_iter=200)
    assert torch.allclose(agg.update, direction, atol=1e-7)


def test_result_is_a_weiszfeld_fixed_point_and_matches_scipy():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 5, generator=g, dtype=F64)
    w = torch.rand(7, generator=g, dtype=F64) + 0.1
    agg = geometric_median(x, w, tol=1e-15, max_iter=1000)
    z = agg.update
    assert torch.allclose(agg.weights @ x, z, atol=1e-15)  # the reported weights reproduce the update
    beta = w / torch.linalg.vector_norm(x - z, dim=1)
    assert torch.allclose(beta @ x / beta.sum(), z, atol=1e-9)
    xn, wn = x.numpy(), w.numpy()
    ref = minimize(
        lambda p: _objective(xn, wn, p),
        np.zeros(5),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 20000},
    )
    assert _objective(xn, wn, z.numpy()) <= ref.fun + 1e-9
    np.testing.assert_allclose(z.numpy(), ref.x, atol=1e-4)


def test_integer_weights_act_as_repeated_points():
    x = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [5.0, 5.0]], dtype=F64)
    weighted = geometric_median(x, torch.tensor([2.0, 1.0, 1.0, 3.0]), tol=1e-14, max_iter=500)
    repeated = geometric_median(x[[0, 0, 1, 2, 3, 3, 3]], torch.ones(7), tol=1e-14, max_iter=500)
    assert torch.allclose(weighted.update, repeated.update, atol=1e-9)


def test_one_huge_outlier_moves_the_median_far_less_than_the_mean():
    g = torch.Generator().manual_seed(4)
    x = torch.cat([torch.randn(9, 3, generator=g, dtype=F64), torch.full((1, 3), 1e6, dtype=F64)])
    agg = geometric_median(x, torch.ones(10))
    assert float(torch.linalg.vector_norm(x.mean(dim=0))) > 1e5
    assert float(torch.linalg.vector_norm(agg.update)) < 2.0
    assert float(agg.weights[9]) < 1e-5


def test_identical_points_and_float32():
    agg = geometric_median(torch.ones(4, 3), torch.ones(4))
    assert agg.update.tolist() == [1.0, 1.0, 1.0] and agg.update.dtype == torch.float32
    assert float(agg.weights.sum()) == pytest.approx(1.0)


def test_parameter_validation():
    u, w = torch.randn(3, 2), torch.ones(3)
    with pytest.raises(ValueError, match="max_iter must be >= 1, got 0"):
        geometric_median(u, w, max_iter=0)
    for bad in (0.0, math.nan):
        with pytest.raises(ValueError, match=f"tol must be > 0, got {bad}"):
            geometric_median(u, w, tol=bad)
    with pytest.raises(ValueError, match="eps must be > 0, got -1"):
        geometric_median(u, w, eps=-1.0)


def _subgradient(x: torch.Tensor, w: torch.Tensor, z: torch.Tensor) -> float:
    """|sum_i w_i (z - x_i) / ||z - x_i||| / sum_i w_i: zero exactly at the geometric median (off the data)."""
    d = z - x
    return float((w[:, None] * d / d.norm(dim=1, keepdim=True)).sum(0).norm() / w.sum())


@pytest.mark.parametrize("scale", [1e6, 1e8])
def test_huge_outliers_do_not_stop_the_iteration_early(scale):
    """2 of 10 updates at 1e6 / 1e8 x the honest norm: a mean start and an objective-change stop ended
    1.6 / 70 honest norms away from the median; the median start and the step stop reach its optimality
    condition."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 1000, generator=g, dtype=torch.float64)
    honest_norm = float(x.norm(dim=1).median())
    x[[3, 7]] = scale * honest_norm * torch.randn(2, 1000, generator=g, dtype=torch.float64) / 1000**0.5
    w = torch.ones(10, dtype=torch.float64)
    z = geometric_median(x, w).update
    assert _subgradient(x, w, z) < 1e-6
    ref = x.median(0).values  # an independent long Weiszfeld run to machine precision
    for _ in range(20_000):
        beta = w / (x - ref).norm(dim=1)
        new = beta @ x / beta.sum()
        if float((new - ref).norm()) < 1e-13:
            break
        ref = new
    assert float((z - ref).norm()) < 1e-4 * honest_norm
