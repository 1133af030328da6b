"""What an adaptive colluder assumes about the server's aggregation rule (``attack.params.against``).

Kerckhoffs: the colluders know the rule by name (not its random state, nor the honest updates
unless omniscient) and model how far k identical submissions c can move the aggregate A of n
updates from the honest estimate h, per coordinate:

- ``mean`` (FedAvg, and rules that average what they keep: quant_aware's screen, norm clipping,
  centered clipping, FLAME, RFA near the centre): A - h = gain (c - h), gain = k / n; the colluders'
  distance to h is bounded (``RuleModel.budget``, in honest spreads) for the rules that clip or
  filter by distance.
- ``select`` (Krum): the rule returns one submission; identical colluders close to h are picked,
  so A = c (gain 1) while c stays within the honest spread.
- ``multiselect`` (Multi-Krum): the mean of the m = n - f picked, gain k / m.
- ``order`` (coordinate-wise median, trimmed mean): A_i is an order statistic of the honest values
  and the colluders'; it can only move within the honest order statistics (``solve_order``).

Pure maths on tensors; the honest values of the ``order`` family are modelled as h_i + sigma_i z_j
with z_j the expected normal order statistics (Blom's approximation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist

import torch


class Family(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """How a rule's aggregate responds to the colluders' submission."""

    MEAN = "mean"
    SELECT = "select"
    MULTISELECT = "multiselect"
    ORDER = "order"


class Statistic(str, Enum):  # noqa: UP042
    """The coordinate-wise order statistic of an ``order`` rule."""

    MEDIAN = "median"
    TRIMMED = "trimmed"


@dataclass(frozen=True)
class RuleModel:
    """The colluders' model of one rule: its family, whether it bounds distance, its order statistic."""

    family: Family
    # The colluders' default distance to h, in units of an honest update's RMS distance to the
    # honest mean, for rules that clip, filter or select by distance; None: the rule bounds nothing.
    budget: float | None = 1.0
    statistic: Statistic = Statistic.MEDIAN
    screened: bool = False  # the rule screens each submission's FP vs quantized outputs (quant_aware)
    trim: float = 0.2  # trimmed mean: the share cut at each end (fedtrimmedavg's default beta)

    def budget_for(self, cohort: int, colluders: int, runs: int) -> float | None:
        """The colluders' distance budget, in honest spreads (None: unbounded).

        Krum and Multi-Krum: Krum's score of c sums squared distances to its n - f - 2 nearest,
        the twin colluder at 0 and honest updates at about d^2 + s^2 (d: c's distance to the honest
        mean, s: the spread); an honest update's neighbours lie at about 2 s^2. c is picked while
        d < s, and d^2 already holds h's own error (1/runs + 1/(n - k)) s^2: the budget is 0.8 of
        what is left, sqrt(1 - 1/runs - 1/(n - k)).
        """
        if self.family in (Family.SELECT, Family.MULTISELECT):
            left = 1.0 - 1.0 / runs - 1.0 / max(cohort - colluders, 1)
            return 0.8 * math.sqrt(max(left, 0.0))
        return self.budget

    def gain(self, cohort: int, colluders: int) -> float:
        """How much of the colluders' displacement c - h reaches the aggregate (mean-like families)."""
        if self.family is Family.SELECT:
            return 1.0
        if self.family is Family.MULTISELECT:
            return colluders / max(cohort - colluders, colluders)
        return colluders / cohort

    def error(self, sigma: torch.Tensor, cohort: int, colluders: int, runs: int) -> torch.Tensor:
        """Per coordinate, the RMS error of the aggregate around the colluders' aim.

        ``sigma`` is the per-coordinate spread of one honest update; ``runs`` honest runs gave the
        estimate h. Mean-like: (m - k)/m sigma sqrt(1/(m - k) + 1/runs) over the m averaged
        updates; Krum: none (the aggregate is the submission); order statistics: the sample
        median's sqrt(pi / 2) sigma / sqrt(n - k), and the estimate's error.
        """
        honest = max(cohort - colluders, 1)
        if self.family is Family.SELECT:
            return torch.zeros_like(sigma)
        if self.family is Family.ORDER:
            return sigma * math.sqrt(math.pi / 2 / honest + 1.0 / runs)
        averaged = cohort if self.family is Family.MEAN else max(cohort - colluders, colluders)
        share = max(averaged - colluders, 1) / averaged
        return share * sigma * math.sqrt(1.0 / max(averaged - colluders, 1) + 1.0 / runs)


RULE_MODELS: dict[str, RuleModel] = {
    "fedavg": RuleModel(Family.MEAN, budget=None),
    "quant_aware": RuleModel(Family.MEAN, budget=None, screened=True),
    "norm_clipping": RuleModel(Family.MEAN),
    "centered_clipping": RuleModel(Family.MEAN),
    "flame": RuleModel(Family.MEAN),
    "rfa": RuleModel(Family.MEAN),
    "dnc": RuleModel(Family.MEAN),
    "foolsgold": RuleModel(Family.MEAN),
    "krum": RuleModel(Family.SELECT),
    "multikrum": RuleModel(Family.MULTISELECT),
    "fedmedian": RuleModel(Family.ORDER, statistic=Statistic.MEDIAN),
    "fedtrimmedavg": RuleModel(Family.ORDER, statistic=Statistic.TRIMMED),
    "bulyan": RuleModel(Family.ORDER, statistic=Statistic.TRIMMED),
}


def blom_scores(count: int) -> torch.Tensor:
    """Expected standard-normal order statistics of ``count`` draws, Blom's (j - 3/8) / (count + 1/4)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    nd = NormalDist()
    return torch.tensor([nd.inv_cdf((j - 0.375) / (count + 0.25)) for j in range(1, count + 1)], dtype=torch.float64)


def order_aggregate(values: torch.Tensor, statistic: Statistic, trim: float) -> torch.Tensor:
    """The coordinate-wise median (mean of the two middle values when even) or trimmed mean of (n, d) ``values``.

    The trimmed mean cuts int(trim n) values at each end, as Flower's FedTrimmedAvg does.
    """
    n = values.shape[0]
    ordered = values.sort(dim=0).values
    if statistic is Statistic.MEDIAN:
        return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    cut = int(trim * n)
    if 2 * cut >= n:
        raise ValueError(f"trim {trim} cuts every one of {n} values")
    return ordered[cut : n - cut].mean(0)


def solve_order(
    honest: torch.Tensor, colluders: int, target: torch.Tensor, rule: RuleModel, iterations: int = 40
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per coordinate, the value c that k identical colluders submit so that the order aggregate hits ``target``.

    The aggregate of ``honest`` (m, d) and k copies of c is nondecreasing in c, so bisection over c
    finds it where ``target`` lies within what c can reach. Returns (c, reached): where the target
    is out of reach, c is the extreme nearest to it and ``reached`` is False.
    """
    if colluders < 1:
        raise ValueError(f"colluders must be >= 1, got {colluders}")
    spread = (honest.max(0).values - honest.min(0).values).clamp_min(1e-12)
    lo, hi = honest.min(0).values - spread, honest.max(0).values + spread

    def agg(c: torch.Tensor) -> torch.Tensor:
        return order_aggregate(torch.cat([honest, _copies(c, colluders)]), rule.statistic, rule.trim)

    low_reach, high_reach = agg(lo), agg(hi)
    reached = (target >= low_reach) & (target <= high_reach)
    a, b = lo.clone(), hi.clone()
    for _ in range(iterations):
        mid = (a + b) / 2
        up = agg(mid) < target
        a, b = torch.where(up, mid, a), torch.where(up, b, mid)
    c = torch.where(reached, (a + b) / 2, torch.where(target > high_reach, hi, lo))
    return c, reached


def order_reach(
    h: torch.Tensor, sigma: torch.Tensor, cohort: int, colluders: int, rule: RuleModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up): per coordinate, how far below and above h the colluders can move an order aggregate.

    The honest values are modelled as h + sigma z_j (``blom_scores``); both reaches are >= 0.
    """
    return real_order_reach(h, synthetic_honest(h, sigma, max(cohort - colluders, 1)), colluders, rule)


def real_order_reach(h: torch.Tensor, honest: torch.Tensor, colluders: int, rule: RuleModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up): how far below and above h k colluders move the order aggregate of the (m, *h.shape) ``honest`` values."""
    big = 1e6 * (honest.max(0).values - honest.min(0).values).clamp_min(1e-12) + h.abs()
    down = h - order_aggregate(torch.cat([honest, _copies(h - big, colluders)]), rule.statistic, rule.trim)
    up = order_aggregate(torch.cat([honest, _copies(h + big, colluders)]), rule.statistic, rule.trim) - h
    return down.clamp_min(0), up.clamp_min(0)


def synthetic_honest(h: torch.Tensor, sigma: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` honest values per coordinate at their expected order statistics: h + sigma z_j, shape (count, d)."""
    z = blom_scores(count).to(h.dtype).to(h.device)
    return h.unsqueeze(0) + sigma.unsqueeze(0) * z.reshape(-1, *([1] * h.dim()))


def _copies(c: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` copies of ``c`` stacked on a new first dimension."""
    return c.unsqueeze(0).expand(count, *c.shape)
