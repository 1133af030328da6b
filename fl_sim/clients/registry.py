"""The behaviour registry and what a behaviour is given each round."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from fl_sim.config.schema import AttackConfig, Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.registry import Registry


class NoParams(BaseModel):
    """Parameters of a behaviour that takes none (any given key is rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


State = dict[str, torch.Tensor]


@dataclass
class SubmissionMemo:
    """The last coordinated colluder submission computed in one client process.

    Coordinated colluders compute identical submissions (same pooled data, shared RNG, same start):
    the first computes it, the others of the round find it here. ``key`` names everything the
    submission depends on. One memo per client process, owned by its ClientApp (never module state).
    """

    key: tuple[object, ...] | None = None
    state: State | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    target: State | None = None
    hits: int = 0

    def lookup(self, key: tuple[object, ...]) -> tuple[State, dict[str, float], State | None] | None:
        """The stored submission if it was computed for ``key``."""
        if self.key != key or self.state is None:
            return None
        self.hits += 1
        return self.state, dict(self.metrics), self.target

    def store(self, key: tuple[object, ...], state: State, metrics: dict[str, float], target: State | None) -> None:
        """Keep this submission (replacing the previous one)."""
        self.key, self.state, self.metrics, self.target = key, state, dict(metrics), target


@dataclass(frozen=True)
class TrainContext:
    """Everything a client knows when it trains in one round."""

    scenario: Scenario
    server_round: int
    partition_id: int
    data: ExampleSet
    cohort_size: int
    device: torch.device
    generator: torch.Generator
    # Colluders only: their pooled data, how many of them train this round, a shared RNG.
    colluder_data: ExampleSet | None = None
    colluders_in_cohort: int = 0
    colluder_generator: torch.Generator | None = None
    # The targeted-sample attack's x* with its true label (colluders only, when attack.target_sample is set).
    target_sample: ExampleSet | None = None
    num_classes: int = 10
    text: TextCodec | None = None  # text datasets: the tokenizer (the text trigger's tokens)
    memo: SubmissionMemo | None = None  # coordinated colluders: the process's shared submission


class Behaviour(ABC):
    """How a client turns the global model into its update (in place on ``model``)."""

    Params: ClassVar[type[BaseModel]] = NoParams
    # True for model-poisoning attacks whose update the server-side adversary crafts from benign
    # updates (fl_sim/server/adversary.py calls ``craft``); the client itself trains honestly.
    crafted: ClassVar[bool] = False
    needs_target_sample: ClassVar[bool] = False

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    @abstractmethod
    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Train ``model`` in place; return metrics to report (loss, ...)."""

    @classmethod  # noqa: B027  (an optional hook, not abstract: by default every setting is honoured)
    def check(cls, attack: AttackConfig) -> None:
        """Raise ValueError for attack settings this behaviour cannot honour (checked at load time)."""

    def tamper(
        self, state: dict[str, torch.Tensor], start: dict[str, torch.Tensor], num_examples: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        """What the client actually sends (honest behaviours send what they trained)."""
        return state, num_examples


BEHAVIOURS: Registry[type[Behaviour]] = Registry("behaviour")
MALICIOUS: set[str] = set()


def register_attack(name: str, description: str) -> Callable[[type[Behaviour]], type[Behaviour]]:
    """Register a malicious behaviour (selectable as ``attack.behaviour``)."""

    def deco(cls: type[Behaviour]) -> type[Behaviour]:
        BEHAVIOURS.register(name, description)(cls)
        MALICIOUS.add(name)
        return cls

    return deco
