"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017).

The example-count-weighted mean of client models. Flower's built-in.
"""

import torch
from flwr.app import RecordDict
from flwr.serverapp.strategy import FedAvg, Strategy

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, FlowerDefense, NoParams


@STRATEGIES.register("fedavg", "FedAvg: weighted mean of client models (McMahan et al. 2017)")
class FedAvgDefense(FlowerDefense[NoParams]):
    """Flower's FedAvg; every client counts in proportion to its example count."""

    Params = NoParams

    def flower_strategy(self) -> Strategy:
        """Flower's FedAvg."""
        return FedAvg()

    def decisions(self, contents: list[RecordDict], counts: torch.Tensor) -> torch.Tensor:
        """Each client's share of the examples."""
        return (counts / counts.sum()).double()


@REPLICAS.register("fedavg", "the example-weighted mean")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return (counts.double() / counts.double().sum()) @ updates.double()
