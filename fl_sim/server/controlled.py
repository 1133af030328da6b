"""Controlled sampling for any Flower strategy: the cohort of each round comes from
``fl_sim.cohort`` (seeded), replies are aggregated in partition-id order (so float sums are
reproducible), federated evaluation is off (the server evaluates centrally), and every round's
cohort and repliers are logged. The strategy never sees who is malicious."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fl_sim.cohort import sample_cohort


class ControlledSampling:
    """Mixin placed before a Flower strategy class in the MRO."""

    def setup_control(self, seed: int, num_clients: int, cohort_size: int, node_of: dict[int, int]) -> None:
        self.fl_seed, self.fl_num_clients, self.fl_cohort_size = seed, num_clients, cohort_size
        self.fl_node_of = node_of
        self.fl_pid_of = {node: pid for pid, node in node_of.items()}
        self.fl_round_log: dict[int, dict[str, Any]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        cohort = sample_cohort(self.fl_seed, server_round, self.fl_num_clients, self.fl_cohort_size)
        self.fl_round_log[server_round] = {"cohort": cohort}
        config["server-round"] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return [Message(content=record, message_type=MessageType.TRAIN, dst_node_id=self.fl_node_of[p]) for p in cohort]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        ordered = sorted(replies, key=lambda m: self.fl_pid_of.get(m.metadata.src_node_id, -1))
        log = self.fl_round_log.setdefault(server_round, {})
        log["replied"] = [self.fl_pid_of[m.metadata.src_node_id] for m in ordered if not m.has_error()]
        log["failed"] = [self.fl_pid_of.get(m.metadata.src_node_id, -1) for m in ordered if m.has_error()]
        return super().aggregate_train(server_round, ordered)  # type: ignore[misc]

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None


def controlled(cls: type[Strategy]) -> type[Strategy]:
    """``cls`` with controlled sampling mixed in."""
    return type(f"Controlled{cls.__name__}", (ControlledSampling, cls), {})
