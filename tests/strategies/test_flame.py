"""FLAME (Nguyen et al., USENIX Security 2022): filtering, median-norm clipping and the noise draw."""

import math

import numpy as np
import pytest
import torch

from strategies.flame import flame, majority_cluster

F64 = torch.float64


def _planted(d: int = 20, seed: int = 0) -> torch.Tensor:
    """8 updates along one direction with norms 1..8, then one opposite and one random far-off update."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(d, generator=g, dtype=F64)
    base /= torch.linalg.vector_norm(base)
    honest = [k * base for k in range(1, 9)]
    return torch.stack(honest + [-30 * base, 30 * torch.randn(d, generator=g, dtype=F64)])


def _expected_noiseless(updates: torch.Tensor, kept: list[int]) -> np.ndarray:
    """numpy reference of clip-to-median-of-all-norms then equal-weight mean of the kept rows."""
    x = updates.numpy()
    norms = np.linalg.norm(x, axis=1)
    s_t = np.median(norms)
    clipped = x * np.minimum(1.0, s_t / norms)[:, None]
    return clipped[kept].mean(axis=0)


def test_rejects_two_far_off_updates_and_clips_to_the_median_norm():
    updates = _planted()
    agg = flame(updates, torch.ones(10), noise_lambda=0.0)
    assert agg.weights.tolist() == [1 / 8] * 8 + [0.0, 0.0]
    np.testing.assert_allclose(agg.update.numpy(), _expected_noiseless(updates, list(range(8))), atol=1e-14)
    # Norms 1..8, 30, 30 ||z||: median (5 + 6) / 2 = 5.5, so the honest updates of norms 6, 7, 8 are clipped
    # (the rejected ones are not marked: they are not in the aggregate).
    assert agg.clipped.tolist() == [False] * 5 + [True] * 3 + [False, False]


def test_noisy_honest_cluster_keeps_a_majority_without_the_outliers():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(20, generator=g)
    honest = base + 0.1 * torch.randn(8, 20, generator=g)
    updates = torch.cat([honest, torch.stack([-base, 5 * torch.randn(20, generator=g)])])
    keep = majority_cluster(updates)
    assert not bool(keep[8:].any())
    # sklearn's single-cluster labelling may also drop rim points; it keeps at least min_cluster_size.
    assert int(keep.sum()) >= 10 // 2 + 1


def test_noise_is_seeded_and_has_std_lambda_times_median_norm():
    d, lam = 100_000, 0.05
    updates = _planted(d=d, seed=1)
    s_t = float(np.median(np.linalg.norm(updates.numpy(), axis=1)))
    clean = flame(updates, torch.ones(10), noise_lambda=0.0)
    noisy = flame(updates, torch.ones(10), noise_lambda=lam, generator=torch.Generator().manual_seed(9))
    noise = noisy.update - clean.update
    expected = lam * s_t * torch.randn(d, generator=torch.Generator().manual_seed(9), dtype=F64)
    assert torch.allclose(noise, expected, atol=1e-15)
    assert float(noise.std()) == pytest.approx(lam * s_t, rel=0.015)
    again = flame(updates, torch.ones(10), noise_lambda=lam, generator=torch.Generator().manual_seed(9))
    assert torch.equal(noisy.update, again.update)


def test_weighted_variant_uses_example_counts_of_the_kept():
    updates = _planted()
    counts = torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8, 100, 100])
    agg = flame(updates, counts, noise_lambda=0.0, weighted=True)
    assert torch.allclose(agg.weights, torch.cat([torch.arange(1.0, 9.0) / 36, torch.zeros(2)]).double())


def test_single_client_is_its_own_majority():
    agg = flame(torch.tensor([[3.0, 4.0]]), torch.ones(1), noise_lambda=0.0)
    assert agg.update.tolist() == [3.0, 4.0] and agg.weights.tolist() == [1.0]


def test_parameter_validation():
    u, w = _planted(), torch.ones(10)
    for bad in (1, 11):
        with pytest.raises(ValueError, match=rf"min_cluster_size must be in \[2, n=10\], got {bad}"):
            flame(u, w, min_cluster_size=bad)
    with pytest.raises(ValueError, match=r"min_samples must be in \[1, n=10\], got 0"):
        flame(u, w, min_samples=0)
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match=f"noise_lambda must be finite and >= 0, got {bad}"):
            flame(u, w, noise_lambda=bad)
    with pytest.raises(ValueError, match="torch.Generator is needed"):
        flame(u, w)
