"""MDA, minimum-diameter averaging (El Mhamdi, Guerraoui, Rouault, ICLR 2021).

The paper: "Distributed Momentum for Byzantine-resilient Stochastic Gradient Descent", ICLR 2021 (after
Rousseeuw's minimum volume ellipsoid).

Among all subsets of n - f updates, the one of smallest diameter (largest pairwise distance) is
averaged with equal weights; ties go to the first subset in lexicographic order. Exhaustive: the
number of subsets C(n, f) is capped (``MAX_SUBSETS``).
"""

from __future__ import annotations

import itertools
import math

import torch

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, AssumedF, RoundInput, TensorDefense
from strategies.aggregation_result import Aggregate, check_updates, refuse_f_at_least_n
from strategies.krum import assumed_f, selection_weights

MAX_SUBSETS = 200_000


def mda_subset(updates: torch.Tensor, f: int) -> torch.Tensor:
    """Indices of the n - f updates with the smallest diameter."""
    x = check_updates(updates)
    n = x.shape[0]
    if not 0 <= f < n:
        raise ValueError(f"MDA needs 0 <= f < n, got f={f}, n={n}")
    if math.comb(n, f) > MAX_SUBSETS:
        raise ValueError(f"MDA would search C({n}, {f}) = {math.comb(n, f)} subsets (at most {MAX_SUBSETS})")
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").cpu()
    best, best_diam = tuple(range(n - f)), math.inf
    for subset in itertools.combinations(range(n), n - f):
        idx = torch.tensor(subset)
        diam = float(d[idx][:, idx].max())
        if diam < best_diam:
            best, best_diam = subset, diam
    return torch.tensor(best, dtype=torch.long)


def mda(updates: torch.Tensor, f: int) -> Aggregate:
    """MDA aggregate of (n, d) ``updates``: the plain mean of the minimum-diameter subset."""
    x = check_updates(updates)
    picked = mda_subset(x, f)
    w = selection_weights(x.shape[0], picked).to(x.device)
    return Aggregate(update=(w @ x).to(updates.dtype), weights=w)


@REPLICAS.register("mda", "the same function (counts unused)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return mda(updates, min(f, updates.shape[0] - 1)).update


@STRATEGIES.register("mda", "mean of the n-f updates of smallest diameter (El Mhamdi et al. 2021)")
class MDADefense(TensorDefense[AssumedF]):
    """MDA with the assumed f."""

    Params = AssumedF

    @classmethod
    def check(cls, params: AssumedF, assumed_f: int | None, cohort_size: int) -> None:  # type: ignore[override]
        """Refuse f >= n and more subsets than MDA searches."""
        refuse_f_at_least_n(assumed_f, cohort_size)
        if assumed_f is None:
            return
        if math.comb(cohort_size, assumed_f) > MAX_SUBSETS:
            raise ValueError(f"C({cohort_size}, {assumed_f}) subsets is more than MDA searches ({MAX_SUBSETS})")

    def aggregate(self, r: RoundInput) -> Aggregate:
        """MDA of the round's updates."""
        return mda(r.updates, min(assumed_f(self.knowledge), r.updates.shape[0] - 1))
