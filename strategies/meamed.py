"""Meamed, mean around the median (Xie, Koyejo, Gupta, arXiv 1802.10116, 2018).

The paper: "Generalized Byzantine-tolerant SGD".

Per coordinate, the plain mean of the n - f values closest to the coordinate-wise median (ties to the
lower client index). A client's logged weight is the share of coordinates where its value was kept.
"""

from __future__ import annotations

import torch

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, AssumedF, RoundInput, TensorDefense
from strategies.aggregation_result import Aggregate, check_updates, refuse_f_at_least_n
from strategies.krum import assumed_f


def meamed_kept(updates: torch.Tensor, f: int) -> torch.Tensor:
    """(n, d) bool: which values each coordinate's mean keeps (the n - f nearest its median)."""
    x = check_updates(updates)
    n = x.shape[0]
    if not 0 <= f < n:
        raise ValueError(f"Meamed needs 0 <= f < n, got f={f}, n={n}")
    med = x.quantile(0.5, dim=0)
    order = torch.argsort((x - med).abs(), dim=0, stable=True)[: n - f]
    kept = torch.zeros_like(x, dtype=torch.bool)
    kept.scatter_(0, order, True)
    return kept


def meamed(updates: torch.Tensor, f: int) -> Aggregate:
    """Meamed aggregate of (n, d) ``updates``, with each client's share of kept coordinates as its weight."""
    x = check_updates(updates)
    kept = meamed_kept(x, f)
    mean = (x * kept).sum(0) / (x.shape[0] - f)
    share = kept.double().sum(1)
    return Aggregate(update=mean.to(updates.dtype), weights=share / share.sum())


@REPLICAS.register("meamed", "the same function (counts unused)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return meamed(updates, min(f, updates.shape[0] - 1)).update


@STRATEGIES.register("meamed", "mean of the n-f values nearest the median, per coordinate (Xie et al. 2018)")
class MeamedDefense(TensorDefense[AssumedF]):
    """Meamed with the assumed f."""

    Params = AssumedF

    @classmethod
    def check(cls, params: AssumedF, assumed_f: int | None, cohort_size: int) -> None:  # type: ignore[override]
        """Refuse f >= n."""
        refuse_f_at_least_n(assumed_f, cohort_size)

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Meamed of the round's updates."""
        return meamed(r.updates, min(assumed_f(self.knowledge), r.updates.shape[0] - 1))
