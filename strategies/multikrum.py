"""Multi-Krum (Blanchard et al., NeurIPS 2017): average the m updates with the best Krum scores.
Flower's built-in."""

from flwr.serverapp.strategy import MultiKrum
from pydantic import Field

from fl_sim.server.strategy_registry import STRATEGIES, NoParams, StrategySpec


class MultiKrumParams(NoParams):
    num_malicious: int | None = Field(None, ge=0, description="assumed f (default: attack.num_malicious)")
    num_selected: int | None = Field(None, ge=1, description="m updates kept (default: n - f, set per cohort)")


@STRATEGIES.register("multikrum", "Multi-Krum: mean of the m best-scored updates (Blanchard et al. 2017)")
class MultiKrumSpec(StrategySpec):
    Params = MultiKrumParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        f = num_malicious_assumed if params.num_malicious is None else params.num_malicious
        return MultiKrum, {"num_malicious_nodes": f, "num_nodes_to_select": params.num_selected or max(1, cohort_size - f)}
