"""Divide-and-Conquer (Shejwalkar & Houmansadr, NDSS 2021): scores against sklearn's PCA, planted outliers."""

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from strategies.dnc import dnc, dnc_scores

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _planted(n_honest: int = 20, n_bad: int = 3, d: int = 200) -> torch.Tensor:
    """Honest N(0, I) updates, then updates shifted 3 standard deviations along one direction u."""
    g = _gen(1)
    honest = torch.randn(n_honest, d, generator=g, dtype=F64)
    u = torch.ones(d, dtype=F64) / math.sqrt(d)
    bad = torch.randn(n_bad, d, generator=g, dtype=F64) + 3 * math.sqrt(d) * u
    return torch.cat([honest, bad])


def test_scores_are_squared_first_principal_components():
    x = torch.randn(9, 6, generator=_gen(), dtype=F64)
    pc1 = PCA(n_components=1, svd_solver="full").fit_transform(x.numpy())[:, 0]
    np.testing.assert_allclose(dnc_scores(x).numpy(), pc1**2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sub_dim", [50, 10_000])
def test_removes_planted_outliers_along_one_direction(sub_dim):
    x = _planted()
    counts = torch.arange(1.0, 24.0)
    agg = dnc(x, counts, 3, _gen(), sub_dim=sub_dim)
    expected_w = torch.cat([counts[:20] / counts[:20].sum(), torch.zeros(3)]).double()
    assert torch.allclose(agg.weights, expected_w, atol=1e-15)
    assert torch.allclose(agg.update, expected_w @ x, atol=1e-14)


def test_filter_fraction_sets_how_many_are_dropped():
    x = _planted(n_bad=4)
    agg = dnc(x, torch.ones(24), 4, _gen(), filter_frac=0.5, iterations=1)
    assert int((agg.weights > 0).sum()) == 24 - 2
    assert not bool((agg.weights[20:] > 0).all())


def test_no_assumed_attacker_is_the_weighted_mean():
    x = _planted()
    w = torch.rand(23, generator=_gen(2), dtype=F64)
    agg = dnc(x, w, 0, _gen())
    assert torch.allclose(agg.update, (w / w.sum()) @ x, atol=1e-14)


def test_seeded_subsets_are_reproducible():
    x = _planted(n_bad=1) + torch.randn(21, 200, generator=_gen(3), dtype=F64)
    a = dnc(x, torch.ones(21), 5, _gen(7), sub_dim=20, iterations=3)
    b = dnc(x, torch.ones(21), 5, _gen(7), sub_dim=20, iterations=3)
    assert torch.equal(a.update, b.update) and torch.equal(a.weights, b.weights)
    # The intersection over iterations drops at least the floor(c m) = 5 of one iteration.
    assert int((a.weights > 0).sum()) <= 21 - 5


def test_parameter_validation():
    x, w = torch.randn(4, 3), torch.ones(4)
    with pytest.raises(ValueError, match="num_malicious must be >= 0, got -1"):
        dnc(x, w, -1, _gen())
    with pytest.raises(ValueError, match="removes all n=4 updates"):
        dnc(x, w, 4, _gen())
    for bad in (-0.5, math.inf):
        with pytest.raises(ValueError, match=f"filter_frac must be finite and >= 0, got {bad}"):
            dnc(x, w, 1, _gen(), filter_frac=bad)
    with pytest.raises(ValueError, match="sub_dim must be >= 1, got 0"):
        dnc(x, w, 1, _gen(), sub_dim=0)
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        dnc(x, w, 1, _gen(), iterations=0)
