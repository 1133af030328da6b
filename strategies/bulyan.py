"""Bulyan (El Mhamdi et al., "The Hidden Vulnerability of Distributed Learning in Byzantium",
ICML 2018): Multi-Krum selection followed by a coordinate-wise trimmed mean. Flower's built-in;
it needs n >= 4f + 3 clients per round."""

from flwr.serverapp.strategy import Bulyan

from fl_sim.server.strategy_registry import STRATEGIES, AssumedF, StrategySpec
from strategies.krum import multikrum_select, selection_weights


@STRATEGIES.register("bulyan", "Bulyan: Multi-Krum selection then trimmed mean; needs n >= 4f+3 (El Mhamdi et al. 2018)")
class BulyanSpec(StrategySpec):
    Params = AssumedF

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        f = params.f(num_malicious_assumed)
        if cohort_size < 4 * f + 3:
            raise ValueError(f"bulyan needs at least 4f+3 = {4 * f + 3} clients per round for f = {f}, the cohort has {cohort_size}")
        return Bulyan, {"num_malicious_nodes": f}

    @staticmethod
    def decisions(params, num_malicious_assumed, cohort_size, updates, weights):
        """Bulyan's selection stage (Flower: Multi-Krum picks theta = n - 2f); the picked share the
        coordinate-wise trimmed aggregate equally."""
        f = params.f(num_malicious_assumed)
        theta = max(1, len(updates) - 2 * f)
        return selection_weights(len(updates), multikrum_select(updates, f, theta))
