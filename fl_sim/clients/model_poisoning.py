"""Classic model-poisoning attacks on flattened updates (pure functions).

An update is a 1-D float tensor (local model minus global model, flattened); ``benign`` is the (m, d)
stack of the benign updates the attacker knows (m >= 1). Each attack returns one malicious update of
length d on ``benign``'s device and dtype; the maths runs in float64.

- ALIE, "A Little Is Enough" (Baruch, Baruch, Goldberg, NeurIPS 2019): mean - z * std per coordinate,
  with s = floor(n/2 + 1) - f and z = Phi^{-1}((n - s) / n).
- IPM, inner product manipulation (Xie, Koyejo, Gupta, "Fall of Empires", UAI 2019): -epsilon * mean.
- Sign flipping: -scale * mean.
- Gaussian attack (Fang, Cao, Jia, Gong, "Local Model Poisoning Attacks to Byzantine-Robust Federated
  Learning", USENIX Security 2020): a draw of N(0, sigma^2 I).
- Min-Max / Min-Sum (Shejwalkar, Houmansadr, "Manipulating the Byzantine", NDSS 2021): mean + gamma * p
  for a perturbation p (unit_vec, std, sign), gamma the largest value (halving search, their Alg. 1)
  keeping the update's max (resp. summed squared) distance to the benign updates within the benign one.
- Stealth projections (norm clipping, projection onto a ball) for an attacker adapting to a norm or
  distance screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from statistics import NormalDist
from typing import cast

import torch


class Perturbation(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """Perturbation directions p of Shejwalkar & Houmansadr (NDSS 2021), Sec. IV."""

    UNIT_VEC = "unit_vec"
    STD = "std"
    SIGN = "sign"


def _check_benign(benign: torch.Tensor) -> torch.Tensor:
    """Validate the (m, d) benign stack, m >= 1, and return it as float64."""
    if benign.dim() != 2 or benign.shape[0] < 1:
        raise ValueError(f"benign must be a 2-D (m, d) tensor with m >= 1 rows, got shape {tuple(benign.shape)}")
    return benign.double()


def _std(b: torch.Tensor) -> torch.Tensor:
    """Per-coordinate sample standard deviation (Bessel-corrected); zeros for a single row."""
    return b.std(dim=0, correction=1) if b.shape[0] > 1 else torch.zeros_like(b[0])


def alie_z(n: int, f: int) -> float:
    """ALIE's z for ``f`` attackers among ``n`` clients: Phi^{-1}((n - s) / n), s = floor(n/2 + 1) - f."""
    if not 0 < f < n:
        raise ValueError(f"need 0 < f < n, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    q = (n - s) / n
    if not 0.0 < q < 1.0:
        raise ValueError(f"(n - s) / n = {q} (n={n}, f={f}, s={s}) is outside (0, 1): f is too large for ALIE's z")
    return NormalDist().inv_cdf(q)


def alie(benign: torch.Tensor, z: float) -> torch.Tensor:
    """ALIE update: the benign mean shifted by ``z`` standard deviations, coordinate-wise."""
    b = _check_benign(benign)
    return (b.mean(dim=0) - z * _std(b)).to(benign.dtype)


def ipm(benign: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Inner product manipulation: -epsilon times the benign mean."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    b = _check_benign(benign)
    return (-epsilon * b.mean(dim=0)).to(benign.dtype)


def sign_flip(benign: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Sign-flipping update: -scale times the benign mean."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    b = _check_benign(benign)
    return (-scale * b.mean(dim=0)).to(benign.dtype)


def gaussian_update(d: int, sigma: float, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A draw of N(0, sigma^2 I_d) from ``generator`` (on the generator's device)."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return sigma * torch.randn(d, generator=generator, dtype=dtype, device=generator.device)


def perturbation(benign: torch.Tensor, kind: Perturbation | str) -> torch.Tensor:
    """Perturbation direction p: -mean/||mean|| (unit_vec), -std (std) or -sign(mean) (sign)."""
    kind = Perturbation(kind)
    return _perturbation(_check_benign(benign), kind).to(benign.dtype)


def _perturbation(b: torch.Tensor, kind: Perturbation) -> torch.Tensor:
    mean = b.mean(dim=0)
    if kind is Perturbation.UNIT_VEC:
        norm = torch.linalg.vector_norm(mean)
        if norm == 0:
            raise ValueError("the benign mean is zero, so the unit_vec perturbation is undefined")
        return cast(torch.Tensor, -mean / norm)
    if kind is Perturbation.STD:
        return -_std(b)
    return -torch.sign(mean)


def _halving_search(feasible: Callable[[float], bool], gamma_init: float, tol: float, max_iter: int) -> float:
    """Largest feasible gamma found by Shejwalkar & Houmansadr's halving search (NDSS 2021, Alg. 1)."""
    if not gamma_init > 0:
        raise ValueError(f"gamma_init must be > 0, got {gamma_init}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    gamma, step, best, it = gamma_init, gamma_init / 2, 0.0, 0
    while step > tol and it < max_iter:
        if feasible(gamma):
            best = max(best, gamma)
            gamma += step
        else:
            gamma -= step
        step /= 2
        it += 1
    return best


def _pairwise(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The direct (non-matmul) mode is exact to rounding; the matmul shortcut loses digits near 0.
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def _gamma(
    b: torch.Tensor,
    kind: Perturbation,
    reduce: Callable[[torch.Tensor], torch.Tensor],
    gamma_init: float,
    tol: float,
    max_iter: int,
) -> float:
    """Search gamma for mean + gamma p, with ``reduce`` mapping a distance matrix to a per-row score.

    A gamma is feasible when the candidate's score against the benign rows is within the largest
    benign score.
    """
    mean, p = b.mean(dim=0), _perturbation(b, kind)
    bound = reduce(_pairwise(b, b)).max()

    def feasible(gamma: float) -> bool:
        candidate = (mean + gamma * p).unsqueeze(0)
        return bool(reduce(_pairwise(candidate, b))[0] <= bound)

    return _halving_search(feasible, gamma_init, tol, max_iter)


def _max_dist(dist: torch.Tensor) -> torch.Tensor:
    return dist.max(dim=1).values


def _sum_sq_dist(dist: torch.Tensor) -> torch.Tensor:
    return (dist**2).sum(dim=1)


def min_max_gamma(
    benign: torch.Tensor,
    kind: Perturbation | str = Perturbation.UNIT_VEC,
    gamma_init: float = 10.0,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> float:
    """Min-Max gamma: largest found with max_i ||mean + gamma p - b_i|| <= max_{i,j} ||b_i - b_j||."""
    return _gamma(_check_benign(benign), Perturbation(kind), _max_dist, gamma_init, tol, max_iter)


def min_sum_gamma(
    benign: torch.Tensor,
    kind: Perturbation | str = Perturbation.UNIT_VEC,
    gamma_init: float = 10.0,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> float:
    """Min-Sum gamma: largest found with sum_i ||mean + gamma p - b_i||^2 <= max_i sum_j ||b_i - b_j||^2."""
    return _gamma(_check_benign(benign), Perturbation(kind), _sum_sq_dist, gamma_init, tol, max_iter)


def _shifted_mean(benign: torch.Tensor, kind: Perturbation | str, gamma: float) -> torch.Tensor:
    b = _check_benign(benign)
    return (b.mean(dim=0) + gamma * _perturbation(b, Perturbation(kind))).to(benign.dtype)


def min_max(
    benign: torch.Tensor,
    kind: Perturbation | str = Perturbation.UNIT_VEC,
    gamma_init: float = 10.0,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> torch.Tensor:
    """Min-Max update mean + gamma p, gamma from :func:`min_max_gamma` (0, i.e. the mean, if none fits)."""
    return _shifted_mean(benign, kind, min_max_gamma(benign, kind, gamma_init, tol, max_iter))


def min_sum(
    benign: torch.Tensor,
    kind: Perturbation | str = Perturbation.UNIT_VEC,
    gamma_init: float = 10.0,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> torch.Tensor:
    """Min-Sum update mean + gamma p, gamma from :func:`min_sum_gamma` (0, i.e. the mean, if none fits)."""
    return _shifted_mean(benign, kind, min_sum_gamma(benign, kind, gamma_init, tol, max_iter))


def clip_norm(update: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale ``update`` down to L2 norm ``max_norm`` if it is longer; otherwise return it unchanged."""
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if update.dim() != 1:
        raise ValueError(f"update must be 1-D, got shape {tuple(update.shape)}")
    norm = float(torch.linalg.vector_norm(update.double()))
    return update.clone() if norm <= max_norm else (update.double() * (max_norm / norm)).to(update.dtype)


def project_to_ball(update: torch.Tensor, center: torch.Tensor, radius: float) -> torch.Tensor:
    """Euclidean projection of ``update`` onto the ball of ``radius`` around ``center`` (unchanged if inside)."""
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if update.dim() != 1 or update.shape != center.shape:
        shapes = f"{tuple(update.shape)} and {tuple(center.shape)}"
        raise ValueError(f"update and center must be 1-D tensors of equal shape, got {shapes}")
    c = center.double()
    offset = update.double() - c
    dist = float(torch.linalg.vector_norm(offset))
    return update.clone() if dist <= radius else (c + offset * (radius / dist)).to(update.dtype)
