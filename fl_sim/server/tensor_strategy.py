"""A Flower strategy whose aggregation is a pure function on the stacked (n, d) client updates.

The defenses in ``strategies/`` that Flower does not ship register a ``TensorSpec``: from their
validated parameters it makes an ``AggregationRule`` (a callable, possibly holding state across
rounds, e.g. FoolsGold's history). ``TensorAggregation`` decodes the round's (already screened)
replies, stacks their updates on the defense's device (the GPU when there is one), calls the rule
and records, per client, the weight the rule gave it (0 = rejected).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg, Strategy

from fl_sim.config.schema import Scenario
from fl_sim.server.strategy_registry import StrategySpec
from fl_sim.server.updates import State, flatten_update, float_keys, unflatten_update

if TYPE_CHECKING:  # strategies/ imports this module: no import of it at run time
    from strategies.aggregation_result import Aggregate


@dataclass
class ServerSide:
    """What a defense may use besides the replies: the scenario, the server's own data (loaded on
    first use: the calibration/root set, never given to clients) and the compute device."""

    scenario: Scenario
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @cached_property
    def data(self):  # -> FederatedData (imported lazily: validation needs no data)
        from fl_sim.data.federated import federated_data

        s = self.scenario
        return federated_data(s.data, s.federation.num_clients, s.seed)


@dataclass(frozen=True)
class RoundInput:
    """One round's screened replies, as the rule sees them."""

    server_round: int
    pids: list[int]  # partition ids, ascending (never who is malicious)
    updates: torch.Tensor  # (n, d) on the defense device
    weights: torch.Tensor  # (n,) example counts (after the screen's capping)
    reference: State  # the global model (CPU)
    keys: list[str]  # the floating-point state entries, in flattening order


AggregationRule = Callable[[RoundInput], "Aggregate"]


class TensorSpec(StrategySpec):
    """A defense implemented as an ``AggregationRule``."""

    @staticmethod
    def build(params: Any, num_malicious_assumed: int, cohort_size: int) -> tuple[type[Strategy], dict[str, Any]]:
        return TensorAggregation, {}

    @classmethod
    @abstractmethod
    def rule(cls, params: Any, num_malicious_assumed: int, cohort_size: int, server: ServerSide) -> AggregationRule:
        """The aggregation rule for one run (a fresh object: it may keep state across rounds)."""


class TensorAggregation(FedAvg):
    """FedAvg's message handling with the aggregation replaced by ``fl_rule`` (set by the builder).
    Used under ``ControlledSampling``, which provides the reference model, pid map and round log."""

    fl_rule: AggregationRule
    fl_device: torch.device

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if not replies:
            return None, None
        reference = {k: v.detach().cpu() for k, v in self.fl_reference.items()}  # type: ignore[attr-defined]
        keys = float_keys(reference)
        pids = [self.fl_pid_of[m.metadata.src_node_id] for m in replies]  # type: ignore[attr-defined]
        decoded = getattr(self, "fl_decoded", {})  # the screen decoded these already
        states = [decoded.get(id(m)) or m.content[self.arrayrecord_key].to_torch_state_dict() for m in replies]
        counts = [float(next(iter(m.content.metric_records.values()))[self.weighted_by_key]) for m in replies]
        order = sorted(range(len(pids)), key=pids.__getitem__)
        updates = torch.stack([flatten_update(states[i], reference, keys) for i in order]).to(self.fl_device)
        weights = torch.tensor([counts[i] for i in order], dtype=torch.float64, device=self.fl_device)
        pids = [pids[i] for i in order]
        agg = self.fl_rule(RoundInput(server_round, pids, updates, weights, reference, keys))
        record_decisions(self.fl_round_log.setdefault(server_round, {}), pids, agg)  # type: ignore[attr-defined]
        state = unflatten_update(agg.update.detach().to("cpu", torch.float32), reference, keys)
        return ArrayRecord(state), MetricRecord({"kept": int((agg.weights > 0).sum())})


def record_decisions(log: dict[str, Any], pids: list[int], agg: Aggregate) -> None:
    """Per client: the weight the defense gave it, and whether it clipped it."""
    log["weights"] = {p: float(w) for p, w in zip(pids, agg.weights.tolist())}
    if agg.scores is not None:
        log["scores"] = {p: float(v) for p, v in zip(pids, agg.scores.tolist())}
    if agg.clipped is not None:
        log["clipped"] = [p for p, c in zip(pids, agg.clipped.tolist()) if c]


def model_at(server: ServerSide, reference: State, update: torch.Tensor, keys: list[str]) -> torch.nn.Module:
    """The global model moved by ``update`` (a fresh module on the defense device, in eval mode)."""
    from fl_sim.models import build_model

    data = server.data
    model = build_model(server.scenario.model.name, data.num_classes, data.input_shape, server.scenario.model.pretrained)
    model.load_state_dict(unflatten_update(update.detach().to("cpu", torch.float32), reference, keys))
    return model.to(server.device).eval()
