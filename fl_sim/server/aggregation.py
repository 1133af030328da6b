"""The aggregation interface: what a defense is given, what it returns, and the Flower adapter.

A defense (one file in ``strategies/``) is a :class:`Defense` subclass registered in ``STRATEGIES``:

- a :class:`TensorDefense` implements ``aggregate(RoundInput) -> Aggregate``, a function of the
  stacked (n, d) client updates;
- a :class:`FlowerDefense` names a strategy Flower ships (FedAvg, Krum, ...), which aggregates, and
  may recompute its per-client ``decisions`` for the detection metrics.

Either is built once per run from :class:`ServerKnowledge`: what a real server knows (the cohort size,
its own calibration data, the model architecture, the training and deployment recipes, its device,
the defense's parameters and its assumed number of attackers f) and nothing else: no scenario, no
attack section, no roles, no seed. :class:`FederatedStrategy` is the one Flower strategy of every run:
seeded cohort sampling, the reply screen, then the defense.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from pydantic import BaseModel, ConfigDict, Field

from fl_sim.cohort import sample_cohort
from fl_sim.config.schema import EvaluationConfig, TrainingConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.preaggregators import Mixed, PreAggregator, PreParams, attribute, chain, identity
from fl_sim.registry import Registry
from fl_sim.seeding import torch_generator
from fl_sim.server.payload_guard import GuardLimits, inspect_states, screen, structural_problem
from fl_sim.server.replies import decode_state, error_summary, norm_ratios, reply_count
from fl_sim.server.round_record import RoundLog
from fl_sim.server.routing import Routing
from fl_sim.server.updates import State, flatten_update, float_keys, unflatten_update

logger = logging.getLogger("fl_sim.server")
PARTITION_KEY = "partition-id"
ARRAYS, CONFIG, COUNT = "arrays", "config", "num-examples"


class NoParams(BaseModel):
    """A defense without parameters (unknown keys are refused by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AssumedF(NoParams):
    """Parameters of a defense that assumes a number f of malicious clients per round."""

    num_malicious: int | None = Field(
        None, ge=0, description="assumed f (default: attack.num_malicious, the true count, recorded as such in results.json)"
    )


@dataclass(frozen=True, slots=True)
class ServerKnowledge:
    """Everything a defense may use besides the round's replies: what a real server knows.

    ``generator`` draws the server's own randomness from a key derived one-way from the run's seed and a
    digest of the whole scenario (``fl_sim.server.build.server_rng_key``), so a defense gets reproducible
    streams without learning the seed (from which the roles follow): trying every small seed does not
    find the key without the scenario's attack section. This is an API boundary, not a sandbox: Python
    code determined to cheat can still inspect the interpreter.
    """

    cohort_size: int  # updates the rule receives per round (after any pre-aggregation)
    num_clients: int
    calibration: ExampleSet  # the server's own clean set (root data), never given to clients
    num_classes: int
    input_shape: tuple[int, ...]
    vocab_size: int | None  # text models: the tokenizer's vocabulary size
    training: TrainingConfig  # the recipe the server asks clients to follow
    deployment: EvaluationConfig  # how the server will quantize the global model
    device: torch.device
    params: BaseModel  # the defense's own validated parameters
    assumed_f: int | None  # the defense's assumed number of attackers (None: it assumes none)
    model_factory: Callable[[], torch.nn.Module]
    rng_key: int

    def generator(self, *keys: int | str) -> torch.Generator:
        """A fresh CPU generator for the stream named by ``keys`` (e.g. the defense's name and round)."""
        return torch_generator(self.rng_key, *keys)

    def model_at(self, reference: State, update: torch.Tensor, keys: list[str]) -> torch.nn.Module:
        """The global model moved by ``update`` (a fresh module on the defense device, in eval mode)."""
        model = self.model_factory()
        model.load_state_dict(unflatten_update(update.detach().to("cpu", torch.float32), reference, keys))
        return model.to(self.device).eval()


@dataclass(frozen=True)
class RoundInput:
    """One round's screened replies, as a tensor defense sees them."""

    server_round: int
    pids: list[int]  # partition ids, ascending (never who is malicious)
    updates: torch.Tensor  # (n, d) on the defense device
    weights: torch.Tensor  # (n,) example counts (after the screen's capping)
    reference: State  # the global model (CPU)
    keys: list[str]  # the floating-point state entries, in flattening order


@dataclass(frozen=True)
class Aggregate:
    """An aggregated update and how much each client counted in it.

    ``update``: (d,) the aggregated update. ``weights``: (n,) float64, the effective weight each
    client's update received (0 = rejected); sums to 1 when anything was kept, all zeros otherwise.
    ``clipped``: (n,) bool, which updates were norm-clipped, for the clipping defenses; None elsewhere.
    ``scores``: (n,) the per-client score a screening defense decided on; None elsewhere.
    """

    update: torch.Tensor
    weights: torch.Tensor
    clipped: torch.Tensor | None = None
    scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.update.dim() != 1:
            raise ValueError(f"update must be 1-D, got shape {tuple(self.update.shape)}")
        if self.weights.dim() != 1 or self.weights.dtype != torch.float64:
            got = f"{self.weights.dtype} of shape {tuple(self.weights.shape)}"
            raise ValueError(f"weights must be 1-D float64, got {got}")
        if self.clipped is not None and (self.clipped.shape != self.weights.shape or self.clipped.dtype != torch.bool):
            raise ValueError(
                f"clipped must be a bool tensor shaped like weights {tuple(self.weights.shape)}, "
                f"got {self.clipped.dtype} of shape {tuple(self.clipped.shape)}"
            )


P = TypeVar("P", bound=BaseModel)


class Defense(ABC, Generic[P]):
    """An aggregation rule or defense, built once per run from what the server knows."""

    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, knowledge: ServerKnowledge) -> None:
        self.knowledge = knowledge

    @property
    def params(self) -> P:
        """The defense's validated parameters (an instance of ``Params``)."""
        return cast(P, self.knowledge.params)

    @classmethod
    def uses_f(cls) -> bool:
        """Whether the defense assumes a number f of attackers (its parameters name ``num_malicious``)."""
        return "num_malicious" in cls.Params.model_fields

    @classmethod
    def check(cls, params: BaseModel, assumed_f: int | None, cohort_size: int) -> None:
        """Raise ValueError for settings that cannot work (e.g. too few clients for f); checked when wiring."""


class TensorDefense(Defense[P]):
    """A defense written as a function of the stacked (n, d) updates (it may keep state across rounds)."""

    @abstractmethod
    def aggregate(self, r: RoundInput) -> Aggregate:
        """The round's aggregate and per-client weights."""


class FlowerDefense(Defense[P]):
    """A rule Flower ships: Flower's strategy aggregates the screened replies."""

    @abstractmethod
    def flower_strategy(self) -> Strategy:
        """The Flower strategy whose ``aggregate_train`` aggregates (its sampling settings are unused)."""

    def decisions(self, contents: list[RecordDict], counts: torch.Tensor) -> torch.Tensor | None:
        """(n,) float64 weights the rule gives the n screened replies (0 = rejected), for the detection metrics.

        ``contents`` are the replies exactly as Flower's strategy will aggregate them, so a rule can
        log what Flower picks by running Flower's own selection on them. None for rules that make no
        per-client decision (coordinate-wise ones), or when Flower will not aggregate this round.
        """
        return None


STRATEGIES: Registry[type[Defense[Any]]] = Registry("strategy")


@dataclass(frozen=True)
class Screened:
    """A reply that passed the screen: its sender, canonical message, decoded state and (capped) count."""

    pid: int
    message: Message
    state: State
    count: float


@dataclass(frozen=True)
class Sampling:
    """The server's seeded cohort sampling (fl_sim.cohort), identical on server and clients."""

    seed: int
    num_clients: int
    cohort_size: int


@dataclass
class FederatedStrategy(Strategy):
    """The Flower strategy of every run: seeded cohorts, reply screen, then the defense.

    Replies are aggregated in partition-id order (float sums are reproducible), federated evaluation
    is off (the server evaluates centrally), and each round's cohort, repliers and decisions go to
    ``round_log``. The defense never sees who is malicious.
    """

    defense: Defense[Any]
    sampling: Sampling
    routing: Routing
    limits: GuardLimits = field(default_factory=GuardLimits)
    dropped: Callable[[int, int], bool] | None = None  # (round, partition id) -> reply lost in transit
    pre: list[PreAggregator[Any]] = field(default_factory=list)  # pre-aggregation steps, applied in order
    round_log: dict[int, RoundLog] = field(default_factory=dict)
    reference: State = field(default_factory=dict)
    flower: Strategy | None = field(default=None, init=False, repr=False)  # a FlowerDefense's strategy

    def pid_for(self, reply: Message) -> int:
        """The partition id a reply comes from (-1: unknown; the server-side adversary uses it too)."""
        return self.routing.pid_for(reply)

    def log(self, server_round: int) -> RoundLog:
        """The round's log entry (created on first use)."""
        return self.round_log.setdefault(server_round, RoundLog())

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """Send the global model to the round's seeded cohort, each message naming the partition to train."""
        s = self.sampling
        cohort = sample_cohort(s.seed, server_round, s.num_clients, s.cohort_size)
        self.round_log[server_round] = RoundLog(cohort=cohort)
        config["server-round"] = server_round
        self.reference = arrays.to_torch_state_dict()
        node_of = self.routing.assign(cohort)
        messages = [
            Message(
                content=RecordDict({ARRAYS: arrays, CONFIG: ConfigRecord({**config, PARTITION_KEY: p})}),
                message_type=MessageType.TRAIN,
                dst_node_id=node_of[p],
            )
            for p in cohort
        ]
        self.routing.sent(messages, cohort)
        return messages

    def lose_in_transit(self, server_round: int, replies: Iterable[Message]) -> list[Message]:
        """The replies that reach the server: those hit by an injected ``drop`` fault are logged and removed."""
        replies = list(replies)
        if self.dropped is None:
            return replies
        lost = [m for m in replies if self.dropped(server_round, self.pid_for(m))]
        self.log(server_round).dropped = sorted(self.pid_for(m) for m in lost)
        return [m for m in replies if all(m is not x for x in lost)]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Screen the replies, aggregate the kept ones with the defense, refuse a malformed aggregate."""
        log = self.log(server_round)
        ordered = sorted(replies, key=self.pid_for)
        ok = [m for m in ordered if not m.has_error()]
        failed = [m for m in ordered if m.has_error()]
        log.replied = [self.pid_for(m) for m in ok]
        log.failed = [self.pid_for(m) for m in failed]
        log.errors = {str(self.pid_for(m)): error_summary(m.error.reason or "") for m in failed}
        answered = set(log.replied) | set(log.failed) | set(log.dropped)
        log.timed_out = [p for p in log.cohort if p not in answered]
        kept = self._screen(ok, log)
        if not kept:
            return None, None
        arrays: ArrayRecord | None
        metrics: MetricRecord | None
        if isinstance(self.defense, TensorDefense):
            arrays, metrics = self._aggregate_tensors(server_round, kept, self.defense, log)
        elif isinstance(self.defense, FlowerDefense):
            arrays, metrics = self._aggregate_flower(server_round, kept, self.defense, log)
        else:
            raise TypeError(f"{type(self.defense).__name__} is neither a TensorDefense nor a FlowerDefense")
        if arrays is not None and structural_problem(self.reference, arrays.to_torch_state_dict()) is not None:
            logger.warning(
                "round %d: the aggregate is not a finite model of the right shape; the global model is kept", server_round
            )
            log.aggregate_rejected = True
            return None, metrics
        return arrays, metrics

    def _stack(self, kept: list[Screened], device: torch.device) -> tuple[State, list[str], torch.Tensor, torch.Tensor]:
        reference = {k: v.detach().cpu() for k, v in self.reference.items()}
        keys = float_keys(reference)
        updates = torch.stack([flatten_update(r.state, reference, keys) for r in kept]).to(device)
        counts = torch.tensor([r.count for r in kept], dtype=torch.float64, device=device)
        return reference, keys, updates, counts

    def _mix(self, server_round: int, updates: torch.Tensor, counts: torch.Tensor) -> Mixed:
        """The pre-aggregation steps on the round's updates (the identity without any)."""
        if not self.pre:
            return identity(updates, counts)
        return chain(self.pre, updates, counts, self.defense.knowledge.generator("pre-aggregation", server_round))

    def _aggregate_tensors(
        self, server_round: int, kept: list[Screened], defense: TensorDefense[Any], log: RoundLog
    ) -> tuple[ArrayRecord, MetricRecord]:
        reference, keys, updates, counts = self._stack(kept, defense.knowledge.device)
        pids = [r.pid for r in kept]
        mixed = self._mix(server_round, updates, counts)
        same = mixed.updates.shape[0] == len(pids)
        # a bucket is named by its first member: pid-keyed state (FoolsGold's history) stays per input
        inputs = pids if same else [pids[int(row.nonzero()[0])] for row in mixed.mixing]
        agg = defense.aggregate(RoundInput(server_round, inputs, mixed.updates, mixed.weights, reference, keys))
        weights = attribute(agg.weights, mixed.mixing) if self.pre else agg.weights
        log.weights = {p: float(w) for p, w in zip(pids, weights.tolist())}
        if agg.scores is not None and same:
            log.scores = {p: float(v) for p, v in zip(pids, agg.scores.tolist())}
        if agg.clipped is not None and same:
            log.clipped = [p for p, c in zip(pids, agg.clipped.tolist()) if c]
        state = unflatten_update(agg.update.detach().to("cpu", torch.float32), reference, keys)
        return ArrayRecord(state), MetricRecord({"kept": int((agg.weights > 0).sum())})

    def _mixed_replies(self, server_round: int, kept: list[Screened]) -> tuple[list[Message], torch.Tensor, Mixed]:
        """The replies Flower aggregates after the pre-aggregation steps, their counts, and the mixing."""
        reference, keys, updates, counts = self._stack(kept, torch.device("cpu"))
        mixed = self._mix(server_round, updates, counts)
        messages = []
        for r, u, c in zip(kept, mixed.updates, mixed.weights.tolist()):  # outputs <= inputs: reuse the envelopes
            state = unflatten_update(u.to(torch.float32), reference, keys)
            r.message.content = RecordDict({ARRAYS: ArrayRecord(state), "metrics": MetricRecord({COUNT: float(c)})})
            messages.append(r.message)
        return messages, mixed.weights, mixed

    def _aggregate_flower(
        self, server_round: int, kept: list[Screened], defense: FlowerDefense[Any], log: RoundLog
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        if self.pre:
            messages, counts, mixed = self._mixed_replies(server_round, kept)
        else:
            messages = [r.message for r in kept]
            counts = torch.tensor([r.count for r in kept], dtype=torch.float64)
            mixed = None
        # Decided before aggregating (Flower may consume the arrays), logged only if Flower aggregated.
        weights = defense.decisions([m.content for m in messages], counts)
        if self.flower is None:
            self.flower = defense.flower_strategy()  # built once per run
        arrays, metrics = self.flower.aggregate_train(server_round, messages)
        if weights is not None and arrays is not None:
            if mixed is not None:
                weights = attribute(weights, mixed.mixing)
            log.weights = {r.pid: float(w) for r, w in zip(kept, weights.tolist())}
        return arrays, metrics

    def _screen(self, ok: list[Message], log: RoundLog) -> list[Screened]:
        """Screen the round's replies.

        Reject malformed or non-finite replies and absurd norms, cap example counts, and rebuild each
        kept reply in canonical form (so one odd reply cannot break aggregation).
        """
        states = [decode_state(m, ARRAYS) for m in ok]
        counts = [reply_count(m, COUNT) for m in ok]
        problems, norms = inspect_states(self.reference, states)
        reasons, capped = screen(self.reference, states, counts, self.limits, (problems, norms))
        pids = [self.pid_for(m) for m in ok]
        log.norm_ratio = norm_ratios(pids, norms)
        kept: list[Screened] = []
        for m, pid, state, reason, n, c in zip(ok, pids, states, reasons, counts, capped):
            if reason is not None or state is None:
                logger.warning("client %d rejected: %s", pid, reason)
                log.rejected[pid] = reason or "unreadable"
                continue
            if c != n:
                logger.warning("client %d reported %s examples; capped at %s", pid, n, c)
                log.capped[pid] = [n, c]
            m.content = RecordDict({ARRAYS: m.content[ARRAYS], "metrics": MetricRecord({COUNT: c})})
            kept.append(Screened(pid, m, state, c))
        return kept

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """No federated evaluation: the server evaluates the global model centrally."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """No federated evaluation."""
        return None

    def summary(self) -> None:
        """Nothing to log: fl_sim reports the run itself."""


@dataclass(frozen=True)
class DefensePlan:
    """The run's defense, resolved once by the wiring step: its class, validated parameters and assumed f.

    ``f_is_true_count``: the scenario let the assumed f default to the true number of colluders (a
    defender who knows it exactly); results.json and the report say so.
    """

    defense: type[Defense[Any]]
    params: BaseModel
    assumed_f: int | None
    f_is_true_count: bool = False
    pre: tuple[PrePlan, ...] = ()  # pre-aggregation steps, in order
    rule_inputs: int | None = None  # updates per round the rule receives after ``pre`` (None: the cohort)

    def pre_steps(self) -> list[PreAggregator[Any]]:
        """Fresh instances of the pre-aggregation steps."""
        return [p.step(p.params, p.assumed_f) for p in self.pre]


@dataclass(frozen=True)
class PrePlan:
    """One resolved pre-aggregation step: its class, validated parameters and assumed f."""

    step: type[PreAggregator[Any]]
    params: PreParams
    assumed_f: int | None
    step_name: str = ""  # the registered name, for the records
