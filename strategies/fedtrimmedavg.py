"""FedTrimmedAvg: coordinate-wise trimmed mean (Yin et al., ICML 2018). Flower's built-in."""

import torch
from flwr.serverapp.strategy import FedTrimmedAvg, Strategy
from pydantic import Field

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, FlowerDefense, NoParams


class TrimmedParams(NoParams):
    """How much the trimmed mean cuts."""

    beta: float = Field(0.2, ge=0, lt=0.5, description="fraction cut at each end, per coordinate")


@STRATEGIES.register("fedtrimmedavg", "coordinate-wise trimmed mean, beta cut at each end (Yin et al. 2018)")
class FedTrimmedAvgDefense(FlowerDefense[TrimmedParams]):
    """Flower's coordinate-wise trimmed mean (no per-client decision)."""

    Params = TrimmedParams

    def flower_strategy(self) -> Strategy:
        """Flower's FedTrimmedAvg with the scenario's beta."""
        return FedTrimmedAvg(beta=self.params.beta)


@REPLICAS.register("fedtrimmedavg", "the trimmed mean at the default beta = 0.2 (Flower's cut: int(beta n) each end)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    n = updates.shape[0]
    cut = int(TrimmedParams().beta * n)
    return updates.double().sort(dim=0).values[cut : n - cut].mean(0)
