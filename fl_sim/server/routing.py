"""Which Flower node runs which client in a round.

With one node per client, node i always runs client (partition) i. Clients hold no state between
rounds, so a large population does not need a node each: with fewer nodes than clients, each
round's sampled clients are spread over the nodes in cohort order, round-robin (a node with several
runs them one after another), and every message names the partition to train. A reply is traced to
its client through the message it answers (``reply_to_message_id``), so several clients may share a
node in one round. Flower's simulation engine polls every node for work, so a population of 1,000
nodes costs the server CPU each round even when only 100 train.
"""

from __future__ import annotations

from collections import Counter

from flwr.app import Message

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
    """Partition id <-> node id for the current round, and which client each reply comes from.

    ``node_of`` and ``pid_of`` are updated in place by ``assign`` so that every holder sees the
    current round's map; ``pid_of`` (node -> partition) holds only the nodes that run one client.
    """

    def __init__(self, node_of_slot: dict[int, int], num_clients: int) -> None:
        self.slots = [node_of_slot[i] for i in sorted(node_of_slot)]
        self.per_client = len(self.slots) >= num_clients
        self.node_of: dict[int, int] = dict(node_of_slot) if self.per_client else {}
        self.pid_of: dict[int, int] = {node: pid for pid, node in self.node_of.items()}
        self._sent: list[tuple[Message, int]] = []

    def assign(self, cohort: list[int]) -> dict[int, int]:
        """Route this round's ``cohort``; returns partition id -> node id."""
        if self.per_client:
            return self.node_of
        if not self.slots:
            raise RuntimeError("no Flower node to run the clients on")
        self.node_of.clear()
        self.node_of.update({pid: self.slots[i % len(self.slots)] for i, pid in enumerate(cohort)})
        load = Counter(self.node_of.values())
        shared = {node for node, clients in load.items() if clients > 1}
        self.pid_of.clear()
        self.pid_of.update({node: pid for pid, node in self.node_of.items() if node not in shared})
        return self.node_of

    def sent(self, messages: list[Message], pids: list[int]) -> None:
        """Remember which partition each of this round's messages names (their ids exist once Flower sends them)."""
        self._sent = list(zip(messages, pids))

    def pid_for(self, reply: Message) -> int:
        """The partition a reply comes from: by the message it answers, else by its node (-1: unknown)."""
        answered = reply.metadata.reply_to_message_id
        if answered:
            for message, pid in self._sent:
                if message.metadata.message_id == answered:
                    return pid
        return self.pid_of.get(reply.metadata.src_node_id, -1)
