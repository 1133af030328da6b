"""Which Flower node runs which client in a round.

With one node per client, node i always runs client (partition) i. Clients hold no state between
rounds, so a large population does not need a node each: with fewer nodes than clients (one per
cohort slot), each round's sampled clients are spread over the nodes in cohort order and every
message names the partition to train. Flower's simulation engine polls every node for work, so a
population of 1,000 nodes costs the server CPU each round even when only 100 train.
"""

from __future__ import annotations

from fl_sim.cohort import cohort_size
from fl_sim.config.schema import Scenario


def scenario_cohort_size(s: Scenario) -> int:
    """How many clients train per round in ``s``."""
    f = s.federation
    return cohort_size(f.num_clients, f.fraction_train, f.min_train_clients)


def execution_nodes(s: Scenario) -> int:
    """How many Flower nodes run ``s``.

    How many Flower nodes run ``s``: one per client when all train every round, else one per
    cohort slot (the cohort size either way).
    """
    return scenario_cohort_size(s)


class Routing:
    """Partition id <-> node id for the current round.

    ``node_of`` and ``pid_of`` are updated in place by ``assign`` so that every holder (strategy, adversary) sees the current
    round's map.
    """

    def __init__(self, node_of_slot: dict[int, int], num_clients: int) -> None:
        self.slots = [node_of_slot[i] for i in sorted(node_of_slot)]
        self.per_client = len(self.slots) >= num_clients
        self.node_of: dict[int, int] = dict(node_of_slot) if self.per_client else {}
        self.pid_of: dict[int, int] = {node: pid for pid, node in self.node_of.items()}

    def assign(self, cohort: list[int]) -> dict[int, int]:
        """Route this round's ``cohort``; returns partition id -> node id."""
        if self.per_client:
            return self.node_of
        if len(cohort) > len(self.slots):
            raise RuntimeError(f"a cohort of {len(cohort)} clients but only {len(self.slots)} nodes to run them")
        self.node_of.clear()
        self.node_of.update({pid: self.slots[i] for i, pid in enumerate(cohort)})
        self.pid_of.clear()
        self.pid_of.update({node: pid for pid, node in self.node_of.items()})
        return self.node_of
