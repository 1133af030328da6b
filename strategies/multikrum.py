"""Multi-Krum (Blanchard et al., NeurIPS 2017): average the m updates with the best Krum scores.

Flower's built-in.
"""

import torch
from flwr.app import RecordDict
from flwr.serverapp.strategy import MultiKrum, Strategy
from pydantic import Field

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, AssumedF, FlowerDefense
from strategies.krum import assumed_f, flower_pick, multikrum_select


class MultiKrumParams(AssumedF):
    """Multi-Krum's assumed f and how many updates it keeps."""

    num_selected: int | None = Field(None, ge=1, description="m updates kept (default: cohort size - f)")


@STRATEGIES.register("multikrum", "Multi-Krum: mean of the m best-scored updates (Blanchard et al. 2017)")
class MultiKrumDefense(FlowerDefense[MultiKrumParams]):
    """Flower's Multi-Krum."""

    Params = MultiKrumParams

    def _selected(self) -> int:
        return self.params.num_selected or max(1, self.knowledge.cohort_size - assumed_f(self.knowledge))

    def flower_strategy(self) -> Strategy:
        """Flower's MultiKrum keeping m updates."""
        return MultiKrum(num_malicious_nodes=assumed_f(self.knowledge), num_nodes_to_select=self._selected())

    def decisions(self, contents: list[RecordDict], counts: torch.Tensor) -> torch.Tensor:
        """The replies Flower's Multi-Krum picks, weighted by example count (as Flower averages them)."""
        picked = flower_pick(contents, assumed_f(self.knowledge), self._selected())
        w = torch.zeros(len(contents), dtype=torch.float64)
        w[picked] = counts.double()[picked] / counts.double()[picked].sum()
        return w


@REPLICAS.register("multikrum", "the example-weighted mean of the n - f best Krum scores, in float64 on the updates")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    picked = multikrum_select(updates, f, max(1, updates.shape[0] - f))
    w = counts.double()[picked]
    return (w / w.sum()) @ updates.double()[picked]
