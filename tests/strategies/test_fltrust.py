"""FLTrust (Cao et al., NDSS 2021) on hand-made 2-D vectors and against scipy's cosine distance."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cosine as scipy_cosine_distance

from strategies.fltrust import fltrust, trust_scores

F64 = torch.float64


def test_hand_made_2d_case():
    g0 = torch.tensor([2.0, 0.0], dtype=F64)  # ||g0|| = 2
    updates = torch.tensor(
        [
            [3.0, 0.0],  # cos 1 -> TS 1, rescaled to (2, 0)
            [0.0, 5.0],  # cos 0 -> TS 0
            [-1.0, 0.0],  # opposite to g0: cos -1 -> TS 0
            [1.0, 1.0],  # cos 1/sqrt2 -> TS 1/sqrt2, rescaled to (sqrt2, sqrt2)
        ],
        dtype=F64,
    )
    r = 1 / math.sqrt(2)
    agg = fltrust(updates, g0)
    # (1 (2, 0) + r (sqrt2, sqrt2)) / (1 + r) = (3, 1) / (1 + r).
    assert torch.allclose(agg.update, torch.tensor([3.0, 1.0], dtype=F64) / (1 + r), atol=1e-15)
    assert torch.allclose(agg.weights, torch.tensor([1.0, 0.0, 0.0, r], dtype=F64) / (1 + r), atol=1e-15)
    assert agg.weights[1] == 0 and agg.weights[2] == 0


def test_trust_scores_match_scipy():
    g = torch.Generator().manual_seed(3)
    updates = torch.randn(10, 6, generator=g, dtype=F64)
    g0 = torch.randn(6, generator=g, dtype=F64)
    expected = [max(0.0, 1 - scipy_cosine_distance(u, g0.numpy())) for u in updates.numpy()]
    np.testing.assert_allclose(trust_scores(updates, g0).numpy(), expected, atol=1e-12)
    assert 0 < sum(e == 0 for e in expected) < 10


def test_magnitudes_are_normalized_to_the_server_update():
    g = torch.Generator().manual_seed(4)
    updates = torch.randn(5, 8, generator=g, dtype=F64)
    g0 = updates.mean(dim=0)
    boosted = updates.clone()
    boosted[0] *= 1e6  # a boosted update gains nothing
    a, b = fltrust(updates, g0), fltrust(boosted, g0)
    assert torch.allclose(a.update, b.update, atol=1e-12)
    # A convex combination of vectors of norm ||g0|| has norm at most ||g0||.
    assert float(torch.linalg.vector_norm(b.update)) <= float(torch.linalg.vector_norm(g0)) * (1 + 1e-12)


def test_no_trusted_client_gives_zero_update_and_zero_update_gets_no_trust():
    g0 = torch.tensor([1.0, 1.0])
    agg = fltrust(torch.tensor([[-1.0, -2.0], [-3.0, 0.0]]), g0)
    assert agg.update.tolist() == [0.0, 0.0] and agg.weights.tolist() == [0.0, 0.0]
    assert trust_scores(torch.tensor([[0.0, 0.0], [2.0, 2.0]]), g0).tolist() == pytest.approx([0.0, 1.0])


def test_server_update_validation():
    u = torch.ones(2, 3)
    with pytest.raises(ValueError, match="server_update is the zero vector"):
        fltrust(u, torch.zeros(3))
    with pytest.raises(ValueError, match=r"server_update must have shape \(3,\) to match updates, got \(2,\)"):
        fltrust(u, torch.ones(2))
    with pytest.raises(ValueError, match="server_update contains NaN"):
        fltrust(u, torch.tensor([1.0, math.inf, 0.0]))
