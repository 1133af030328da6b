"""FedTrimmedAvg: coordinate-wise trimmed mean (Yin et al., ICML 2018). Flower's built-in."""

from flwr.serverapp.strategy import FedTrimmedAvg
from pydantic import Field

from fl_sim.server.strategy_registry import STRATEGIES, NoParams, StrategySpec


class TrimmedParams(NoParams):
    beta: float = Field(0.2, ge=0, lt=0.5, description="fraction cut at each end, per coordinate")


@STRATEGIES.register("fedtrimmedavg", "coordinate-wise trimmed mean, beta cut at each end (Yin et al. 2018)")
class FedTrimmedAvgSpec(StrategySpec):
    Params = TrimmedParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        return FedTrimmedAvg, {"beta": params.beta}
