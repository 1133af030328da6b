"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017): keep the one update closest to its n-f-2 neighbours. Flower's built-in."""

from flwr.serverapp.strategy import Krum

from fl_sim.server.strategy_registry import STRATEGIES, AssumedF, StrategySpec


@STRATEGIES.register("krum", "Krum: the single update with the smallest n-f-2 neighbour distance (Blanchard et al. 2017)")
class KrumSpec(StrategySpec):
    Params = AssumedF

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        return Krum, {"num_malicious_nodes": params.f(num_malicious_assumed)}
