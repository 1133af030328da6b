"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017): the example-count-weighted mean of client models. Flower's built-in."""

from flwr.serverapp.strategy import FedAvg

from fl_sim.server.strategy_registry import STRATEGIES, NoParams, StrategySpec


@STRATEGIES.register("fedavg", "FedAvg: weighted mean of client models (McMahan et al. 2017)")
class FedAvgSpec(StrategySpec):
    Params = NoParams

    @staticmethod
    def build(params, num_malicious_assumed, cohort_size):
        return FedAvg, {}

    @staticmethod
    def decisions(params, num_malicious_assumed, cohort_size, updates, weights):
        return (weights / weights.sum()).double()
