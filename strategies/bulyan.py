"""Bulyan (El Mhamdi et al., "The Hidden Vulnerability of Distributed Learning in Byzantium", ICML 2018).

Multi-Krum selection followed by a coordinate-wise trimmed mean. Flower's built-in; it needs
n >= 4f + 3 clients per round.
"""

import torch
from flwr.app import RecordDict
from flwr.serverapp.strategy import Bulyan, Strategy
from pydantic import BaseModel

from fl_sim.server.aggregation import STRATEGIES, AssumedF, FlowerDefense
from strategies.krum import assumed_f, flower_pick, selection_weights


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

    def decisions(self, contents: list[RecordDict], counts: torch.Tensor) -> torch.Tensor | None:
        """Bulyan's selection stage as Flower runs it (Multi-Krum picks theta = n - 2f), the picked sharing equally.

        None when fewer than 4f + 3 replies reached the rule: Flower skips the round, nothing is decided.
        """
        f, n = assumed_f(self.knowledge), len(contents)
        if n < 4 * f + 3:
            return None
        return selection_weights(n, flower_pick(contents, f, n - 2 * f))
