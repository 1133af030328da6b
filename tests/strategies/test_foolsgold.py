"""FoolsGold (Fung et al., RAID 2020): sybil down-weighting, a hand-computed case and the authors' code."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from strategies.foolsgold import foolsgold, foolsgold_weights

F64 = torch.float64


def reference_foolsgold(grads: np.ndarray) -> np.ndarray:
    """numpy port of the weight computation in the authors' code (DistributedML/FoolsGold, kappa = 1)."""
    n = grads.shape[0]
    cs = cosine_similarity(grads) - np.eye(n)
    maxcs = np.max(cs, axis=1)
    for i in range(n):
        for j in range(n):
            if i != j and maxcs[i] < maxcs[j]:
                cs[i][j] = cs[i][j] * maxcs[i] / maxcs[j]
    wv = 1 - np.max(cs, axis=1)
    wv[wv > 1] = 1
    wv[wv < 0] = 0
    wv = wv / np.max(wv)
    wv[wv == 1] = 0.99
    with np.errstate(divide="ignore"):
        wv = np.log(wv / (1 - wv)) + 0.5
    wv[(np.isinf(wv) + wv > 1)] = 1
    wv[wv < 0] = 0
    return wv


def _sybil_setting() -> tuple[torch.Tensor, torch.Tensor]:
    """5 honest histories near distinct axes, 3 identical sybil histories on other axes; and updates."""
    g = torch.Generator().manual_seed(0)
    honest = 10 * torch.eye(20, dtype=F64)[:5] + 0.5 * torch.randn(5, 20, generator=g, dtype=F64)
    sybil = torch.zeros(20, dtype=F64)
    sybil[10:] = 1.0
    history = torch.cat([honest, sybil.expand(3, 20)])
    return history, torch.randn(8, 20, generator=g, dtype=F64)


def test_identical_sybils_get_zero_weight_and_diverse_clients_full_weight():
    history, _ = _sybil_setting()
    assert foolsgold_weights(history).tolist() == [1.0] * 5 + [0.0] * 3


def test_aggregate_is_the_mean_of_the_honest_updates():
    history, updates = _sybil_setting()
    agg = foolsgold(updates, history)
    assert agg.weights.tolist() == [0.2] * 5 + [0.0] * 3
    assert torch.allclose(agg.update, updates[:5].mean(dim=0), atol=1e-15)


def test_hand_computed_three_clients_with_pardoning():
    # H1 = (1,0,0), H2 = (1,1,0), H3 = (0,1,1): cs12 = 1/sqrt2, cs13 = 0, cs23 = 1/2.
    # v = (1/sqrt2, 1/sqrt2, 1/2). Pardoning for client 3 (v1, v2 > v3): cs31 = 0, cs32 = (1/2)(1/2)/(1/sqrt2).
    # alpha = (1 - 1/sqrt2, 1 - 1/sqrt2, 1 - sqrt2/4); divided by alpha_3: client 3 -> 1 -> 0.99 -> logit > 1 -> 1.
    history = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=F64)
    a = (1 - 1 / math.sqrt(2)) / (1 - math.sqrt(2) / 4)
    w12 = math.log(a / (1 - a)) + 0.5
    assert w12 == pytest.approx(0.31177, abs=1e-5)
    assert foolsgold_weights(history).tolist() == pytest.approx([w12, w12, 1.0], abs=1e-12)
    # kappa scales the logit before the clip to [0, 1].
    assert foolsgold_weights(history, kappa=2.0).tolist() == pytest.approx([2 * w12, 2 * w12, 1.0], abs=1e-12)


def test_matches_the_authors_reference_code():
    g = torch.Generator().manual_seed(11)
    for trial in range(5):
        shared = torch.randn(12, generator=g, dtype=F64)
        correlated = shared + (0.2 + 0.3 * trial) * torch.randn(4, 12, generator=g, dtype=F64)
        history = torch.cat([correlated, torch.randn(5, 12, generator=g, dtype=F64)])
        ours = foolsgold_weights(history).numpy()
        np.testing.assert_allclose(ours, reference_foolsgold(history.numpy()), atol=1e-9)
    assert np.any((ours > 0) & (ours < 1))  # an intermediate weight was exercised


def test_degenerate_cases():
    # Everyone a copy of everyone: no client is trusted, the aggregate is zero.
    agg = foolsgold(torch.ones(3, 4), torch.ones(3, 4))
    assert agg.weights.tolist() == [0.0] * 3 and agg.update.tolist() == [0.0] * 4
    assert foolsgold_weights(torch.ones(1, 4)).tolist() == [1.0]


def test_parameter_validation():
    with pytest.raises(ValueError, match=r"history must have the shape of updates \(3, 4\), got \(3, 5\)"):
        foolsgold(torch.ones(3, 4), torch.ones(3, 5))
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match=f"kappa must be finite and > 0, got {bad}"):
            foolsgold_weights(torch.eye(3), kappa=bad)
