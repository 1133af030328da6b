"""FedMedian: coordinate-wise median (Yin et al., "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018). Flower's built-in."""

from flwr.serverapp.strategy import FedMedian

from fl_sim.server.strategy_registry import STRATEGIES, NoParams, StrategySpec


@STRATEGIES.register("fedmedian", "coordinate-wise median (Yin et al. 2018)")
class FedMedianSpec(StrategySpec):
    Params = NoParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        return FedMedian, {}
