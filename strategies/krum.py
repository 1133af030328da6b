"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017): keep the one update closest to its n-f-2 neighbours. Flower's built-in."""

from flwr.serverapp.strategy import Krum
from pydantic import Field

from fl_sim.server.strategy_registry import STRATEGIES, NoParams, StrategySpec


class KrumParams(NoParams):
    num_malicious: int | None = Field(None, ge=0, description="assumed f (default: attack.num_malicious)")


@STRATEGIES.register("krum", "Krum: the single update with the smallest n-f-2 neighbour distance (Blanchard et al. 2017)")
class KrumSpec(StrategySpec):
    Params = KrumParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        f = num_malicious_assumed if params.num_malicious is None else params.num_malicious
        return Krum, {"num_malicious_nodes": f}
