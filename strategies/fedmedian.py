"""FedMedian: coordinate-wise median (Yin et al., ICML 2018). Flower's built-in.

The paper: "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
"""

from flwr.serverapp.strategy import FedMedian, Strategy

from fl_sim.server.aggregation import STRATEGIES, FlowerDefense, NoParams


@STRATEGIES.register("fedmedian", "coordinate-wise median (Yin et al. 2018)")
class FedMedianDefense(FlowerDefense[NoParams]):
    """Flower's coordinate-wise median (no per-client decision)."""

    Params = NoParams

    def flower_strategy(self) -> Strategy:
        """Flower's FedMedian."""
        return FedMedian()
