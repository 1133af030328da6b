"""Controlled sampling for any Flower strategy: the cohort of each round comes from
``fl_sim.cohort`` (seeded), replies are aggregated in partition-id order (so float sums are
reproducible), federated evaluation is off (the server evaluates centrally), and every round's
cohort and repliers are logged. The strategy never sees who is malicious."""

from __future__ import annotations

import logging
import re
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
import torch

from fl_sim.cohort import sample_cohort
from fl_sim.server.routing import Routing
from fl_sim.server.payload_guard import GuardLimits, inspect_states, screen, structural_problem

logger = logging.getLogger("fl_sim.server")
PARTITION_KEY = "partition-id"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^\s*([\w.]+(?:Error|Exception|Fault|Exit)): (.+)$")


def error_summary(reason: str, limit: int = 300) -> str:
    """One line for a failed client: the last ``SomeError: message`` line of the (Ray-wrapped)
    traceback, else the first line of the reason."""
    lines = _ANSI.sub("", reason).strip().splitlines()
    raised = [m.group(1).rsplit(".", 1)[-1] + ": " + m.group(2).strip() for ln in lines if (m := _RAISED.match(ln))]
    return (raised[-1] if raised else (lines[0] if lines else ""))[:limit]


class ControlledSampling:
    """Mixin placed before a Flower strategy class in the MRO."""

    def setup_control(self, seed: int, num_clients: int, cohort_size: int, node_of: dict[int, int],
                      limits: GuardLimits | None = None, dropped: Callable[[int, int], bool] | None = None) -> None:
        self.fl_seed, self.fl_num_clients, self.fl_cohort_size = seed, num_clients, cohort_size
        self.fl_limits = limits or GuardLimits()
        self.fl_reference: dict[str, torch.Tensor] = {}
        self.fl_routing = Routing(node_of, num_clients)
        self.fl_node_of = self.fl_routing.node_of  # partition id -> node id, for the current round
        self.fl_pid_of = self.fl_routing.pid_of
        self.fl_round_log: dict[int, dict[str, Any]] = {}
        self.fl_dropped = dropped  # (round, partition id) -> is this reply lost in transit (injected fault)
        # (updates (n, d), counts (n,)) -> the rule's per-client weights, for rules Flower implements
        self.fl_decide: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        cohort = sample_cohort(self.fl_seed, server_round, self.fl_num_clients, self.fl_cohort_size)
        self.fl_round_log[server_round] = {"cohort": cohort}
        config["server-round"] = server_round
        self.fl_reference = arrays.to_torch_state_dict()
        node_of = self.fl_routing.assign(cohort)

        def record(pid: int) -> RecordDict:  # the message names the partition its node must train
            return RecordDict({self.arrayrecord_key: arrays,
                               self.configrecord_key: ConfigRecord({**config, PARTITION_KEY: pid})})

        return [Message(content=record(p), message_type=MessageType.TRAIN, dst_node_id=node_of[p]) for p in cohort]

    def lose_in_transit(self, server_round: int, replies: Iterable[Message]) -> list[Message]:
        """The replies that reach the server: those hit by an injected ``drop`` fault are logged and
        removed (before anything else, the colluders' adversary included, sees them)."""
        replies = list(replies)
        if self.fl_dropped is None:
            return replies
        lost = [m for m in replies if self.fl_dropped(server_round, self.fl_pid_of.get(m.metadata.src_node_id, -1))]
        self.fl_round_log.setdefault(server_round, {})["dropped"] = sorted(self.fl_pid_of[m.metadata.src_node_id] for m in lost)
        return [m for m in replies if all(m is not x for x in lost)]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        try:
            return self._aggregate_screened(server_round, replies)
        finally:
            self.fl_decoded = {}  # the round's decoded models are not kept past aggregation

    def _aggregate_screened(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        ordered = sorted(replies, key=lambda m: self.fl_pid_of.get(m.metadata.src_node_id, -1))
        log = self.fl_round_log.setdefault(server_round, {})
        ok = [m for m in ordered if not m.has_error()]
        log["replied"] = [self.fl_pid_of[m.metadata.src_node_id] for m in ok]
        failed = [m for m in ordered if m.has_error()]
        log["failed"] = [self.fl_pid_of.get(m.metadata.src_node_id, -1) for m in failed]
        # why each failed: the first line of Flower's error (a client exception, an actor killed for memory, ...)
        log["errors"] = {str(self.fl_pid_of.get(m.metadata.src_node_id, -1)): error_summary(m.error.reason or "") for m in failed}
        answered = set(log["replied"]) | set(log["failed"]) | set(log.get("dropped", []))
        log["timed_out"] = [p for p in log.get("cohort", []) if p not in answered]
        kept = self._screen(ok, log)
        if not kept:
            return None, None
        if self.fl_decide is not None:
            self._record_decisions(kept, log)
        arrays, metrics = super().aggregate_train(server_round, kept)  # type: ignore[misc]
        if arrays is not None and structural_problem(self.fl_reference, arrays.to_torch_state_dict()) is not None:
            logger.warning("round %d: the aggregate is not a finite model of the right shape; the global model is kept", server_round)
            log["aggregate_rejected"] = True
            return None, metrics
        return arrays, metrics

    def _record_decisions(self, kept: list[Message], log: dict[str, Any]) -> None:
        """The weight the rule gives each kept reply, recomputed from the replies (Flower's
        built-in strategies do not expose their selection)."""
        from fl_sim.server.updates import flatten_update, float_keys

        keys = float_keys(self.fl_reference)
        pids = [self.fl_pid_of[m.metadata.src_node_id] for m in kept]
        updates = torch.stack([flatten_update(self.fl_decoded[id(m)], self.fl_reference, keys) for m in kept])
        counts = torch.tensor([_count(m, self.weighted_by_key) for m in kept], dtype=torch.float64)
        weights = self.fl_decide(updates, counts)
        if weights is not None:
            log["weights"] = {p: float(w) for p, w in zip(pids, weights.tolist())}

    def _screen(self, ok: list[Message], log: dict[str, Any]) -> list[Message]:
        """Reject malformed or non-finite replies and absurd norms, cap example counts, and
        rebuild each kept reply in canonical form (so one odd reply cannot break aggregation)."""
        states, counts = [], []
        for m in ok:
            states.append(_decode(m, self.arrayrecord_key))
            counts.append(_count(m, self.weighted_by_key))
        problems, norms = inspect_states(self.fl_reference, states)
        reasons, capped = screen(self.fl_reference, states, counts, self.fl_limits, (problems, norms))
        kept: list[Message] = []
        self.fl_decoded: dict[int, dict[str, torch.Tensor]] = {}  # id(kept message) -> its decoded state
        log["rejected"], log["capped"] = {}, {}
        log["norm_ratio"] = _norm_ratios([self.fl_pid_of[m.metadata.src_node_id] for m in ok], norms)
        for m, state, reason, n, c in zip(ok, states, reasons, counts, capped):
            pid = self.fl_pid_of[m.metadata.src_node_id]
            if reason is not None:
                logger.warning("client %d rejected: %s", pid, reason)
                log["rejected"][pid] = reason
                continue
            if c != n:
                logger.warning("client %d reported %s examples; capped at %s", pid, n, c)
                log["capped"][pid] = [n, c]
            # canonical form: only the arrays (which decoded to a well-formed model) and the count
            m.content = RecordDict({self.arrayrecord_key: m.content[self.arrayrecord_key],
                                    "metrics": MetricRecord({self.weighted_by_key: c})})
            kept.append(m)
            self.fl_decoded[id(m)] = state
        return kept

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None


def _norm_ratios(pids: list[int], norms: list[float | None]) -> dict[int, float | None]:
    """Each well-formed reply's update norm over the round's median (what a norm screen sees)."""
    known = {p: n for p, n in zip(pids, norms) if n is not None}
    med = statistics.median(known.values()) if known else 0.0
    return {p: (n / med if med > 0 else None) for p, n in known.items()}


def _decode(m: Message, key: str) -> dict[str, torch.Tensor] | None:
    try:
        return m.content[key].to_torch_state_dict()
    except Exception:  # a hostile or broken payload: anything can be wrong with it
        return None


def _count(m: Message, key: str) -> float:
    try:
        value = next(iter(m.content.metric_records.values()))[key]
        return float(value) if isinstance(value, (int, float)) else float("nan")
    except Exception:
        return float("nan")


def controlled(cls: type[Strategy]) -> type[Strategy]:
    """``cls`` with controlled sampling mixed in."""
    return type(f"Controlled{cls.__name__}", (ControlledSampling, cls), {})
