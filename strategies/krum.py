"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017).

Keep the one update closest to its n-f-2 neighbours. Flower's built-in.
"""

import torch
from flwr.app import RecordDict
from flwr.serverapp.strategy import Krum, Strategy
from flwr.serverapp.strategy.multikrum import select_multikrum

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, AssumedF, FlowerDefense, ServerKnowledge


def krum_scores(updates: torch.Tensor, f: int) -> torch.Tensor:
    """Krum score of each of the n updates (Blanchard et al. 2017, Sec. 4).

    The score is the sum of squared distances to its n - f - 2 nearest other updates.
    """
    n = updates.shape[0]
    k = max(1, n - f - 2)
    d2 = torch.cdist(updates.double(), updates.double()) ** 2  # float64: the matrix-product form is exact enough
    d2.fill_diagonal_(float("inf"))
    return torch.sort(d2, dim=1).values[:, : min(k, n - 1)].sum(1)


def multikrum_select(updates: torch.Tensor, f: int, m: int) -> torch.Tensor:
    """Return the indices of the m updates with the lowest Krum scores (m = 1: Krum's pick); ties by index."""
    return torch.argsort(krum_scores(updates, f), stable=True)[:m]


def selection_weights(n: int, picked: torch.Tensor) -> torch.Tensor:
    """Equal weight on the picked updates, zero elsewhere (float64)."""
    w = torch.zeros(n, dtype=torch.float64)
    w[picked.cpu()] = 1.0 / len(picked)
    return w


def flower_pick(contents: list[RecordDict], f: int, m: int) -> torch.Tensor:
    """Indices of the replies Flower's own Krum / Multi-Krum selection picks (m = 1: Krum).

    The logged decision must be what Flower aggregates: Flower scores the models' float32 arrays, and a
    float64 recomputation on the updates picks another client when the updates are small against the
    model (tests/strategies/test_krum_and_trimmed_mean.py).
    """
    picked = select_multikrum(contents, num_malicious_nodes=f, num_nodes_to_select=m)
    return torch.tensor([next(i for i, c in enumerate(contents) if c is p) for p in picked], dtype=torch.long)


def assumed_f(knowledge: ServerKnowledge) -> int:
    """Return the defense's assumed f (wiring always resolves it for the defenses that use one)."""
    if knowledge.assumed_f is None:
        raise ValueError("this defense needs an assumed number of attackers f")
    return knowledge.assumed_f


@STRATEGIES.register("krum", "Krum: the single update with the smallest n-f-2 neighbour distance (Blanchard et al. 2017)")
class KrumDefense(FlowerDefense[AssumedF]):
    """Flower's Krum with the assumed f."""

    Params = AssumedF

    def flower_strategy(self) -> Strategy:
        """Flower's Krum."""
        return Krum(num_malicious_nodes=assumed_f(self.knowledge))

    def decisions(self, contents: list[RecordDict], counts: torch.Tensor) -> torch.Tensor:
        """All weight on the reply Flower's Krum picks."""
        return selection_weights(len(contents), flower_pick(contents, assumed_f(self.knowledge), 1))


@REPLICAS.register("krum", "Krum's pick in float64 on the updates")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return updates.double()[multikrum_select(updates, f, 1)[0]]
