"""Multi-Krum (Blanchard et al., NeurIPS 2017): average the m updates with the best Krum scores.
Flower's built-in."""

import torch
from flwr.serverapp.strategy import MultiKrum
from pydantic import Field

from fl_sim.server.strategy_registry import STRATEGIES, AssumedF, StrategySpec
from strategies.krum import multikrum_select


class MultiKrumParams(AssumedF):
    num_selected: int | None = Field(None, ge=1, description="m updates kept (default: cohort size - f)")


@STRATEGIES.register("multikrum", "Multi-Krum: mean of the m best-scored updates (Blanchard et al. 2017)")
class MultiKrumSpec(StrategySpec):
    Params = MultiKrumParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        f = params.f(num_malicious_assumed)
        return MultiKrum, {"num_malicious_nodes": f, "num_nodes_to_select": params.num_selected or max(1, cohort_size - f)}

    @staticmethod
    def decisions(params, num_malicious_assumed, cohort_size, updates, weights):
        f = params.f(num_malicious_assumed)
        m = min(len(updates), params.num_selected or max(1, cohort_size - f))
        picked = multikrum_select(updates, f, m)
        w = torch.zeros(len(updates), dtype=torch.float64)
        w[picked] = weights.double()[picked] / weights.double()[picked].sum()  # Flower averages the picked by example count
        return w
