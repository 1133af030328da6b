"""Model-poisoning maths against hand-computed, analytic and scipy reference values."""

import math
import re

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from fl_sim.clients.model_poisoning import (
    Perturbation,
    alie,
    alie_z,
    clip_norm,
    gaussian_update,
    ipm,
    min_max,
    min_max_gamma,
    min_sum,
    min_sum_gamma,
    perturbation,
    project_to_ball,
    sign_flip,
)

# ---------------------------------------------------------------- ALIE


def test_alie_z_matches_scipy_and_hand_value():
    # n=50, f=12: s = floor(26) - 12 = 14, (n - s) / n = 36/50 = 0.72.
    z = alie_z(50, 12)
    assert z == pytest.approx(norm.ppf(0.72), abs=1e-12)
    assert z == pytest.approx(0.5828, abs=1e-4)
    # n=10, f=2: s = floor(6) - 2 = 4, (n - s) / n = 0.6.
    assert alie_z(10, 2) == pytest.approx(norm.ppf(0.6), abs=1e-12)
    assert alie_z(10, 2) == pytest.approx(0.2533, abs=1e-4)
    # n=11, f=3: s = floor(6.5) - 3 = 3, (n - s) / n = 8/11.
    assert alie_z(11, 3) == pytest.approx(norm.ppf(8 / 11), abs=1e-12)


@pytest.mark.parametrize("n, f", [(10, 10), (10, 11), (10, 0), (10, -1)])
def test_alie_z_rejects_f_outside_0_n(n, f):
    with pytest.raises(ValueError, match=rf"n={n}, f={f}"):
        alie_z(n, f)


def test_alie_z_rejects_too_many_attackers():
    # n=10, f=6: s = 0, (n - s) / n = 1, where Phi^{-1} is infinite.
    with pytest.raises(ValueError, match=r"outside \(0, 1\)"):
        alie_z(10, 6)


def test_alie_is_mean_minus_z_sample_std():
    benign = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])
    # Column 0: mean 3, deviations -2, 0, 2 -> sample variance 8/2 = 4, std 2.
    # Column 1: mean 4, deviations -2, -2, 4 -> sample variance 24/2 = 12, std sqrt(12).
    expected = torch.tensor([3.0 - 0.5 * 2.0, 4.0 - 0.5 * math.sqrt(12.0)])
    out = alie(benign, 0.5)
    assert out.dtype == torch.float32
    assert torch.allclose(out, expected, atol=1e-6)


def test_alie_with_one_benign_row_is_that_row():
    assert torch.equal(alie(torch.tensor([[1.0, -2.0]]), 1.5), torch.tensor([1.0, -2.0]))


# ---------------------------------------------------------------- IPM, sign flip, Gaussian


def test_sign_flip_and_ipm_negate_the_mean():
    benign = torch.tensor([[1.0, -2.0, 0.5], [3.0, 4.0, 0.5]])
    assert torch.equal(sign_flip(benign), torch.tensor([-2.0, -1.0, -0.5]))
    assert torch.equal(sign_flip(benign, scale=3.0), torch.tensor([-6.0, -3.0, -1.5]))
    assert torch.allclose(ipm(benign, 0.1), torch.tensor([-0.2, -0.1, -0.05]))


def test_ipm_rejects_non_positive_epsilon():
    with pytest.raises(ValueError, match="epsilon must be > 0, got 0"):
        ipm(torch.ones(2, 3), 0.0)


def test_gaussian_update_is_deterministic_and_has_std_sigma():
    a = gaussian_update(10, 1.0, torch.Generator().manual_seed(7))
    b = gaussian_update(10, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == (10,)
    big = gaussian_update(200_000, 0.5, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert big.dtype == torch.float64
    assert big.std().item() == pytest.approx(0.5, rel=0.01)
    assert abs(big.mean().item()) < 0.005
    assert torch.equal(gaussian_update(4, 0.0, torch.Generator().manual_seed(0)), torch.zeros(4))


def test_gaussian_update_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sigma must be >= 0, got -1"):
        gaussian_update(3, -1.0, torch.Generator())
    with pytest.raises(ValueError, match="d must be >= 1, got 0"):
        gaussian_update(0, 1.0, torch.Generator())


# ---------------------------------------------------------------- perturbations, Min-Max, Min-Sum


def test_perturbation_directions():
    benign = torch.tensor([[1.0, -2.0], [5.0, -4.0]])  # mean (3, -3), sample std (2 sqrt 2, sqrt 2)
    assert torch.allclose(perturbation(benign, Perturbation.UNIT_VEC), torch.tensor([-1.0, 1.0]) / math.sqrt(2))
    assert torch.allclose(perturbation(benign, "std"), -torch.tensor([2 * math.sqrt(2), math.sqrt(2)]))
    assert torch.equal(perturbation(benign, Perturbation.SIGN), torch.tensor([-1.0, 1.0]))


def test_analytic_one_dimensional_case():
    benign = torch.tensor([[1.0], [3.0]])  # mean 2, unit_vec p = -1, max pairwise distance 2
    # Min-Max: max(|1 - g|, |1 + g|) = 1 + g <= 2  ->  g = 1.
    assert min_max_gamma(benign) == pytest.approx(1.0, abs=1e-4)
    assert min_max(benign).item() == pytest.approx(1.0, abs=1e-4)
    # Min-Sum: (1 - g)^2 + (1 + g)^2 = 2 + 2 g^2 <= max_i sum_j |b_i - b_j|^2 = 4  ->  g = 1.
    assert min_sum_gamma(benign) == pytest.approx(1.0, abs=1e-4)
    assert min_sum(benign).item() == pytest.approx(1.0, abs=1e-4)


def test_identical_benign_updates_leave_no_room_so_the_mean_is_returned():
    benign = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    assert min_max_gamma(benign) == 0.0 and min_sum_gamma(benign) == 0.0
    assert torch.equal(min_max(benign), torch.tensor([1.0, 2.0]))
    assert torch.equal(min_sum(benign), torch.tensor([1.0, 2.0]))


def _np_max_score(x: np.ndarray, b: np.ndarray) -> float:
    return max(float(np.linalg.norm(x - row)) for row in b)


def _np_sum_score(x: np.ndarray, b: np.ndarray) -> float:
    return sum(float(np.sum((x - row) ** 2)) for row in b)


@pytest.mark.parametrize(
    "attack, gamma_of, score",
    [(min_max, min_max_gamma, _np_max_score), (min_sum, min_sum_gamma, _np_sum_score)],
    ids=["min_max", "min_sum"],
)
@pytest.mark.parametrize("kind", list(Perturbation))
def test_random_case_is_feasible_maximal_and_points_along_p(attack, gamma_of, score, kind):
    benign = torch.randn(8, 50, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.3
    b = benign.numpy()
    bound = max(score(row, b) for row in b)
    mean, p = b.mean(axis=0), perturbation(benign, kind).numpy()

    gamma = gamma_of(benign, kind)
    out = attack(benign, kind).numpy()
    assert out.dtype == np.float64 and out.shape == (50,)
    assert np.allclose(out, mean + gamma * p, atol=1e-12)
    assert score(out, b) <= bound + 1e-9  # feasible
    assert score(mean + (gamma + 1e-3) * p, b) > bound  # maximal
    # The condition is convex in gamma and holds at 0: scipy's root of it is the exact largest gamma.
    exact = brentq(lambda g: score(mean + g * p, b) - bound, 0.0, 100.0, xtol=1e-12)
    assert gamma == pytest.approx(exact, abs=1e-4)

    expected_p = {
        Perturbation.UNIT_VEC: -mean / np.linalg.norm(mean),
        Perturbation.STD: -b.std(axis=0, ddof=1),
        Perturbation.SIGN: -np.sign(mean),
    }[kind]
    assert gamma > 0 and np.allclose((out - mean) / gamma, expected_p, atol=1e-9)


def test_min_max_keeps_float32():
    benign = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert min_max(benign).dtype == torch.float32 and min_sum(benign, "sign").dtype == torch.float32


def test_search_parameters_and_kind_are_validated():
    benign = torch.ones(2, 3)
    with pytest.raises(ValueError, match="tol must be > 0, got 0"):
        min_max(benign, tol=0.0)
    with pytest.raises(ValueError, match="gamma_init must be > 0, got -1"):
        min_sum_gamma(benign, gamma_init=-1.0)
    with pytest.raises(ValueError, match="max_iter must be >= 1, got 0"):
        min_max_gamma(benign, max_iter=0)
    with pytest.raises(ValueError, match="'bogus' is not a valid Perturbation"):
        min_max(benign, "bogus")
    with pytest.raises(ValueError, match="benign mean is zero"):
        perturbation(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), Perturbation.UNIT_VEC)


@pytest.mark.parametrize("bad", [torch.ones(3), torch.ones(2, 3, 4), torch.ones(0, 3)])
@pytest.mark.parametrize("attack", [lambda b: alie(b, 1.0), lambda b: ipm(b, 1.0), sign_flip, min_max, min_sum])
def test_benign_shape_is_validated(bad, attack):
    with pytest.raises(ValueError, match="got shape " + re.escape(str(tuple(bad.shape)))):
        attack(bad)


# ---------------------------------------------------------------- stealth projections


def test_clip_norm():
    out = clip_norm(torch.tensor([3.0, 4.0], dtype=torch.float64), 2.5)
    assert torch.allclose(out, torch.tensor([1.5, 2.0], dtype=torch.float64))
    assert torch.linalg.vector_norm(out).item() == pytest.approx(2.5, abs=1e-15)
    inside = torch.tensor([0.3, -0.4])
    assert torch.equal(clip_norm(inside, 0.5), inside) and torch.equal(clip_norm(inside, 1.0), inside)
    assert torch.equal(clip_norm(inside, 0.0), torch.zeros(2))
    with pytest.raises(ValueError, match="max_norm must be >= 0, got -1"):
        clip_norm(inside, -1.0)
    with pytest.raises(ValueError, match=r"got shape \(1, 2\)"):
        clip_norm(inside.unsqueeze(0), 1.0)


def test_project_to_ball():
    center = torch.tensor([1.0, 1.0], dtype=torch.float64)
    out = project_to_ball(torch.tensor([4.0, 5.0], dtype=torch.float64), center, 2.5)  # offset (3, 4)
    assert torch.allclose(out, torch.tensor([2.5, 3.0], dtype=torch.float64))
    assert torch.linalg.vector_norm(out - center).item() == pytest.approx(2.5, abs=1e-15)
    inside = torch.tensor([2.0, 0.0], dtype=torch.float64)
    assert torch.equal(project_to_ball(inside, center, 2.0), inside)
    with pytest.raises(ValueError, match="radius must be >= 0, got -0.5"):
        project_to_ball(inside, center, -0.5)
    with pytest.raises(ValueError, match=r"got \(2,\) and \(3,\)"):
        project_to_ball(inside, torch.zeros(3), 1.0)
