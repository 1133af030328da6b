"""Bulyan (El Mhamdi et al., "The Hidden Vulnerability of Distributed Learning in Byzantium", ICML 2018).

Multi-Krum selection followed by a coordinate-wise trimmed mean. Flower's built-in; it needs
n >= 4f + 3 clients per round.
"""

import torch
from flwr.serverapp.strategy import Bulyan, Strategy
from pydantic import BaseModel

from fl_sim.server.aggregation import STRATEGIES, AssumedF, FlowerDefense
from strategies.krum import assumed_f, multikrum_select, selection_weights


@STRATEGIES.register("bulyan", "Bulyan: Multi-Krum selection then trimmed mean; needs n >= 4f+3 (El Mhamdi et al. 2018)")
class BulyanDefense(FlowerDefense[AssumedF]):
    """Flower's Bulyan."""

    Params = AssumedF

    @classmethod
    def check(cls, params: BaseModel, assumed_f: int | None, cohort_size: int) -> None:
        """Bulyan needs n >= 4f + 3 clients per round."""
        f = assumed_f or 0
        if cohort_size < 4 * f + 3:
            raise ValueError(
                f"bulyan needs at least 4f+3 = {4 * f + 3} clients per round for f = {f}, the cohort has {cohort_size}"
            )

    def flower_strategy(self) -> Strategy:
        """Flower's Bulyan."""
        return Bulyan(num_malicious_nodes=assumed_f(self.knowledge))

    def decisions(self, updates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Bulyan's selection stage (Flower: Multi-Krum picks theta = n - 2f), the picked sharing equally."""
        f = assumed_f(self.knowledge)
        theta = max(1, len(updates) - 2 * f)
        return selection_weights(len(updates), multikrum_select(updates, f, theta))
