"""Shared result type and helpers of the robust aggregators, against numpy / sklearn references."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity as sk_cosine_similarity

from strategies.aggregation_result import (
    Aggregate,
    check_updates,
    check_vector,
    check_weights,
    cosine_similarity,
    gaussian_noise,
    median,
    weighted_mean,
)

CPU = torch.device("cpu")


def test_aggregate_is_frozen_and_validated():
    agg = Aggregate(torch.zeros(3), torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert agg.clipped is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        agg.update = torch.ones(3)
    with pytest.raises(ValueError, match=r"update must be 1-D, got shape \(1, 3\)"):
        Aggregate(torch.zeros(1, 3), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="weights must be 1-D float64, got torch.float32"):
        Aggregate(torch.zeros(3), torch.ones(2))
    with pytest.raises(ValueError, match="clipped must be a bool tensor"):
        Aggregate(torch.zeros(3), torch.ones(2, dtype=torch.float64), torch.zeros(3, dtype=torch.bool))


def test_check_updates():
    out = check_updates(torch.ones(2, 3, dtype=torch.float32))
    assert out.dtype == torch.float64
    with pytest.raises(ValueError, match=r"got shape \(0, 3\)"):
        check_updates(torch.empty(0, 3))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        check_updates(torch.ones(3))
    with pytest.raises(TypeError, match="torch.int64"):
        check_updates(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="list"):
        check_updates([[1.0]])
    bad = torch.ones(4, 2)
    bad[1, 0], bad[3, 1] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=r"clients \[1, 3\]"):
        check_updates(bad)


def test_check_weights():
    assert check_weights(torch.tensor([1, 2]), 2, CPU).dtype == torch.float64
    with pytest.raises(ValueError, match=r"shape \(3,\) to match updates, got \(2,\)"):
        check_weights(torch.ones(2), 3, CPU)
    with pytest.raises(ValueError, match=r"finite and >= 0, got \[1.0, -1.0\]"):
        check_weights(torch.tensor([1.0, -1.0]), 2, CPU)
    with pytest.raises(ValueError, match="finite and >= 0"):
        check_weights(torch.tensor([1.0, float("nan")]), 2, CPU)
    with pytest.raises(ValueError, match="positive sum"):
        check_weights(torch.zeros(2), 2, CPU)


def test_check_vector():
    with pytest.raises(ValueError, match=r"center must have shape \(3,\)"):
        check_vector(torch.ones(2), 3, CPU, "center")
    with pytest.raises(ValueError, match="center contains NaN"):
        check_vector(torch.tensor([0.0, float("nan")]), 2, CPU, "center")


def test_median_matches_numpy():
    for values in ([3.0, 1.0, 2.0], [4.0, 1.0, 3.0, 2.0], [5.0]):
        assert float(median(torch.tensor(values, dtype=torch.float64))) == pytest.approx(np.median(values))


def test_cosine_similarity_matches_sklearn_including_zero_rows():
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[2] = 0.0
    np.testing.assert_allclose(cosine_similarity(x).numpy(), sk_cosine_similarity(x.numpy()), atol=1e-12)


def test_weighted_mean_and_empty_kept_set():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [4.0, 4.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    mean, wn = weighted_mean(x, w)
    assert torch.allclose(mean, torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert wn.tolist() == [0.25, 0.75, 0.0]
    mean, wn = weighted_mean(x, w, torch.tensor([False, False, True]))
    assert mean.tolist() == [0.0, 0.0] and wn.tolist() == [0.0, 0.0, 0.0]


def test_gaussian_noise_needs_a_generator():
    assert gaussian_noise(3, 0.0, None, CPU).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="torch.Generator is needed"):
        gaussian_noise(3, 0.5, None, CPU)
