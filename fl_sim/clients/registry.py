"""The behaviour registry and what a behaviour is given each round."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from fl_sim.config.schema import AttackConfig, Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.registry import Registry


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @classmethod
    def check(cls, attack: "AttackConfig") -> None:
        """Raise ValueError for attack settings this behaviour cannot honour (checked at load time)."""

    def tamper(self, state: dict[str, torch.Tensor], start: dict[str, torch.Tensor],
               num_examples: int) -> tuple[dict[str, torch.Tensor], int]:
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
