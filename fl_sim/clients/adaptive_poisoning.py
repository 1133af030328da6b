"""Adaptive model-poisoning attacks that search against a replica of the server's rule (pure functions).

- Optimal ALIE / Optimal IPM (as ByzFL defines them, ../REFERENCE §8): ALIE's direction mean - z std
  or IPM's -epsilon mean, with the factor searched to maximise the distance of the rule's aggregate
  from the honest mean: a coarse grid over [0, max_scale], then golden-section refinement around the
  best grid point.
- Fang et al. (USENIX Security 2020), local model poisoning, in update space (the current global
  model is the origin): s = sign of the honest mean, the direction the model would move.
  * Against median / trimmed mean: each coordinate sampled just beyond the honest extreme opposite to
    s: in [w_min / b, w_min] (w_min > 0) or [b w_min, w_min] (w_min <= 0) where s > 0, mirrored at
    w_max where s < 0, b = 2 (full knowledge); with partial knowledge (only the colluders' own honest
    updates) in [mu - 4 sigma, mu - 3 sigma] where s > 0, [mu + 3 sigma, mu + 4 sigma] where s < 0.
  * Against Krum: -lambda s, lambda halved from Fang's upper bound; Fang keeps the largest lambda
    Krum selects. Here the lambda of the halving sequence whose aggregate deviates most from the
    honest mean under the rule's replica is kept, which is that lambda for plain Krum (a selected
    submission deviates by lambda sqrt(d), an honest pick by far less) and extends to the same search
    behind pre-aggregators.

``aggregate(x)`` is the replica of the rule on the (n, d) stack of honest and malicious updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

Aggregator = Callable[[torch.Tensor], torch.Tensor]
_GOLDEN = (math.sqrt(5) - 1) / 2


def search_scale(
    objective: Callable[[float], float],
    max_scale: float,
    grid: int = 12,
    refine: int = 16,
    candidates: Sequence[float] = (),
) -> float:
    """The scale in [0, max_scale] maximising ``objective``: a grid of ``grid`` + 1 points, then golden-section search.

    The refinement runs inside the two grid cells around the best grid point and keeps whichever of
    that point and the refined one scores higher, so the result is never worse than the grid's best.
    ``candidates`` (e.g. the fixed attack's own factor) are scored too: the result is never worse than
    any of them either.
    """
    if not max_scale > 0:
        raise ValueError(f"max_scale must be > 0, got {max_scale}")
    if grid < 2 or refine < 0:
        raise ValueError(f"need grid >= 2 and refine >= 0, got grid={grid}, refine={refine}")
    points = [max_scale * i / grid for i in range(grid + 1)]
    scores = [objective(p) for p in points]
    best = max(range(len(points)), key=lambda i: (scores[i], -i))
    extra = max(((objective(c), c) for c in candidates), default=None)
    lo, hi = points[max(best - 1, 0)], points[min(best + 1, grid)]
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = objective(a), objective(b)
    for _ in range(refine):
        if fa >= fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = objective(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = objective(b)
    found = max([(scores[best], points[best]), (fa, a), (fb, b)], key=lambda t: t[0])
    if extra is not None and extra[0] > found[0]:
        found = extra
    return found[1]


def deviation(aggregate: Aggregator, honest: torch.Tensor, malicious: torch.Tensor, copies: int) -> float:
    """||aggregate(honest + ``copies`` x malicious) - mean(honest)||: how far the attack moves the rule's result."""
    x = torch.cat([honest.double(), malicious.double().expand(copies, -1)])
    return float((aggregate(x) - honest.double().mean(0)).norm())


def _std(b: torch.Tensor) -> torch.Tensor:
    return b.std(dim=0, correction=1) if b.shape[0] > 1 else torch.zeros_like(b[0])


def optimal_alie(
    honest: torch.Tensor, copies: int, aggregate: Aggregator, max_z: float, candidates: Sequence[float] = ()
) -> tuple[torch.Tensor, float]:
    """ALIE's mean - z std with z in [0, max_z] (or a candidate) maximising the deviation; returns (update, z)."""
    h = honest.double()
    mean, std = h.mean(0), _std(h)
    z = search_scale(lambda z: deviation(aggregate, h, mean - z * std, copies), max_z, candidates=candidates)
    return (mean - z * std).to(honest.dtype), z


def optimal_ipm(
    honest: torch.Tensor, copies: int, aggregate: Aggregator, max_epsilon: float, candidates: Sequence[float] = ()
) -> tuple[torch.Tensor, float]:
    """IPM's -epsilon mean with epsilon in [0, max_epsilon] (or a candidate) maximising the deviation; (update, epsilon)."""
    h = honest.double()
    mean = h.mean(0)
    eps = search_scale(lambda e: deviation(aggregate, h, -e * mean, copies), max_epsilon, candidates=candidates)
    return (-eps * mean).to(honest.dtype), eps


def _uniform(lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(lo.shape, generator=generator, dtype=torch.float64, device=generator.device).to(lo.device)
    return lo + u * (hi - lo)


def fang_trimmed_full(honest: torch.Tensor, generator: torch.Generator, b: float = 2.0) -> torch.Tensor:
    """Fang's full-knowledge attack on median / trimmed mean: each coordinate just beyond the honest extreme against s."""
    if not b > 1:
        raise ValueError(f"b must be > 1, got {b}")
    h = honest.double()
    s = torch.sign(h.mean(0))
    w_min, w_max = h.min(0).values, h.max(0).values
    # s >= 0: below w_min; s < 0: above w_max
    below_lo = torch.where(w_min > 0, w_min / b, b * w_min)
    above_hi = torch.where(w_max > 0, b * w_max, w_max / b)
    lo = torch.where(s >= 0, below_lo, w_max)
    hi = torch.where(s >= 0, w_min, above_hi)
    return _uniform(lo, hi, generator).to(honest.dtype)


def fang_trimmed_partial(own: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fang's partial-knowledge attack on median / trimmed mean, from the colluders' own honest updates' mean and std."""
    h = own.double()
    mu, sigma, s = h.mean(0), _std(h), torch.sign(h.mean(0))
    lo = torch.where(s >= 0, mu - 4 * sigma, mu + 3 * sigma)
    hi = torch.where(s >= 0, mu - 3 * sigma, mu + 4 * sigma)
    return _uniform(lo, hi, generator).to(own.dtype)


def fang_lambda_bound(honest: torch.Tensor, colluders: int) -> float:
    """Fang's upper bound on lambda (their Sec. 3.2), with the global model at the origin of update space.

    lambda_max = min_i sum_{l in Gamma_i} ||w_l - w_i|| / ((m - 2c - 1) sqrt(d)) + max_i ||w_i|| / sqrt(d),
    Gamma_i the m - c - 2 honest updates nearest w_i, m = honest + c updates in all.
    """
    h = honest.double()
    k, d = h.shape
    m = k + colluders
    dist = torch.cdist(h, h, compute_mode="donot_use_mm_for_euclid_dist")
    near = max(min(m - colluders - 2, k - 1), 1) if k > 1 else 0
    spread = float(dist.sort(dim=1).values[:, 1 : near + 1].sum(1).min()) if near else 0.0
    return spread / (max(m - 2 * colluders - 1, 1) * math.sqrt(d)) + float(h.norm(dim=1).max()) / math.sqrt(d)


def fang_krum(
    honest: torch.Tensor, copies: int, aggregate: Aggregator, halvings: int = 20, threshold: float = 1e-5
) -> tuple[torch.Tensor, float]:
    """Fang's attack on Krum: -lambda s, lambda from the halving sequence deviating the aggregate most; (update, lambda)."""
    h = honest.double()
    s = torch.sign(h.mean(0))
    lam, best, best_dev = fang_lambda_bound(h, copies), 0.0, -1.0
    for _ in range(halvings + 1):
        if lam < threshold:
            break
        dev = deviation(aggregate, h, -lam * s, copies)
        if dev > best_dev:
            best, best_dev = lam, dev
        lam /= 2
    return (-best * s).to(honest.dtype), best
