"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017): keep the one update closest to its n-f-2 neighbours. Flower's built-in."""

import torch
from flwr.serverapp.strategy import Krum

from fl_sim.server.strategy_registry import STRATEGIES, AssumedF, StrategySpec


def krum_scores(updates: torch.Tensor, f: int) -> torch.Tensor:
    """Krum score of each of the n updates: the sum of squared distances to its n - f - 2 nearest
    other updates (Blanchard et al. 2017, Sec. 4)."""
    n = updates.shape[0]
    k = max(1, n - f - 2)
    d2 = torch.cdist(updates.double(), updates.double()) ** 2  # float64: the matrix-product form is exact enough
    d2.fill_diagonal_(float("inf"))
    return torch.sort(d2, dim=1).values[:, : min(k, n - 1)].sum(1)


def multikrum_select(updates: torch.Tensor, f: int, m: int) -> torch.Tensor:
    """Indices of the m updates with the lowest Krum scores (m = 1: Krum's pick); ties by index."""
    return torch.argsort(krum_scores(updates, f), stable=True)[:m]


def selection_weights(n: int, picked: torch.Tensor) -> torch.Tensor:
    """Equal weight on the picked updates, zero elsewhere (float64)."""
    w = torch.zeros(n, dtype=torch.float64)
    w[picked.cpu()] = 1.0 / len(picked)
    return w


@STRATEGIES.register("krum", "Krum: the single update with the smallest n-f-2 neighbour distance (Blanchard et al. 2017)")
class KrumSpec(StrategySpec):
    Params = AssumedF

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        return Krum, {"num_malicious_nodes": params.f(num_malicious_assumed)}

    @staticmethod
    def decisions(params, num_malicious_assumed, cohort_size, updates, weights):
        return selection_weights(len(updates), multikrum_select(updates, params.f(num_malicious_assumed), 1))
