"""FedMedian: coordinate-wise median (Yin et al., ICML 2018). Flower's built-in.

The paper: "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
"""

import torch
from flwr.serverapp.strategy import FedMedian, Strategy

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, FlowerDefense, NoParams


@STRATEGIES.register("fedmedian", "coordinate-wise median (Yin et al. 2018)")
class FedMedianDefense(FlowerDefense[NoParams]):
    """Flower's coordinate-wise median (no per-client decision)."""

    Params = NoParams

    def flower_strategy(self) -> Strategy:
        """Flower's FedMedian."""
        return FedMedian()


@REPLICAS.register("fedmedian", "the coordinate-wise median (mean of the two middle values when n is even)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return updates.double().quantile(0.5, dim=0)
