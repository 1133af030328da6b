"""The pre-aggregation interface: steps that transform the round's updates before any rule aggregates them.

A pre-aggregator (one file in ``strategies/``, registered in ``PREAGGREGATORS``) maps the stacked
(n, d) updates and their (n,) example counts to (m, d) updates and (m,) counts, each output a known
combination of the inputs: ``Mixed.mixing`` (m, n) holds output j's coefficient on input i. Chained
pre-aggregators multiply their mixings, so the server can tell how much each client counted in the
final aggregate (``attribute``). The scenario names them in ``strategy.pre`` (applied in order), or
as ``strategy.name: "nnm+krum"``.

Pure maths on tensors: the server's Flower adapter and the adaptive attackers' rule replicas both use
the same steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from pydantic import BaseModel, ConfigDict, Field

from fl_sim.registry import Registry


class PreParams(BaseModel):
    """A pre-aggregator without parameters (unknown keys are refused by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PreAssumedF(PreParams):
    """Parameters of a pre-aggregator that assumes a number f of malicious clients per round."""

    num_malicious: int | None = Field(
        None, ge=0, description="assumed f (default: the rule's assumed f, else attack.num_malicious, the true count)"
    )


@dataclass(frozen=True)
class Mixed:
    """The output of a pre-aggregation step.

    ``updates`` (m, d); ``weights`` (m,) float64 example counts of the outputs; ``mixing`` (m, n)
    float64: output j = sum_i mixing[j, i] x_i for the n inputs x_i.
    """

    updates: torch.Tensor
    weights: torch.Tensor
    mixing: torch.Tensor

    def __post_init__(self) -> None:
        m = self.updates.shape[0]
        if self.updates.dim() != 2 or self.weights.shape != (m,) or self.mixing.dim() != 2 or self.mixing.shape[0] != m:
            raise ValueError(
                f"inconsistent pre-aggregation shapes: updates {tuple(self.updates.shape)}, "
                f"weights {tuple(self.weights.shape)}, mixing {tuple(self.mixing.shape)}"
            )


P = TypeVar("P", bound=PreParams)


class PreAggregator(ABC, Generic[P]):
    """One pre-aggregation step, built once per run with its validated parameters and assumed f."""

    Params: ClassVar[type[PreParams]] = PreParams

    def __init__(self, params: PreParams, assumed_f: int | None) -> None:
        self._params = params
        self.assumed_f = assumed_f

    @property
    def params(self) -> P:
        """The step's validated parameters (an instance of ``Params``)."""
        return cast(P, self._params)

    @property
    def f(self) -> int:
        """The assumed f (only for steps that use one)."""
        if self.assumed_f is None:
            raise ValueError(f"{type(self).__name__} needs an assumed number of attackers f")
        return self.assumed_f

    @classmethod
    def uses_f(cls) -> bool:
        """Whether the step assumes a number f of attackers (its parameters name ``num_malicious``)."""
        return "num_malicious" in cls.Params.model_fields

    @classmethod
    def outputs(cls, params: PreParams, n: int) -> int:
        """How many updates the step returns for n inputs (checked when wiring)."""
        return n

    @classmethod
    def check(cls, params: PreParams, assumed_f: int | None, n: int) -> None:
        """Raise ValueError for settings that cannot work on n inputs; checked when wiring."""

    @abstractmethod
    def apply(self, updates: torch.Tensor, weights: torch.Tensor, generator: torch.Generator) -> Mixed:
        """Transform (n, d) ``updates`` with (n,) example ``weights``; ``generator`` for randomised steps."""


PREAGGREGATORS: Registry[type[PreAggregator[Any]]] = Registry("pre-aggregator")


def identity(updates: torch.Tensor, weights: torch.Tensor) -> Mixed:
    """The no-op step: every update kept as it is."""
    n = updates.shape[0]
    return Mixed(updates, weights.double(), torch.eye(n, dtype=torch.float64, device=updates.device))


def chain(steps: list[PreAggregator[Any]], updates: torch.Tensor, weights: torch.Tensor, generator: torch.Generator) -> Mixed:
    """Apply ``steps`` in order; the result's mixing is relative to the original n inputs."""
    out = identity(updates, weights)
    for step in steps:
        nxt = step.apply(out.updates, out.weights, generator)
        out = Mixed(nxt.updates, nxt.weights, nxt.mixing.to(out.mixing) @ out.mixing)
    return out


def attribute(rule_weights: torch.Tensor, mixing: torch.Tensor) -> torch.Tensor:
    """How much each of the n original clients counted: the rule's (m,) weights pushed back through ``mixing``.

    Normalised to sum 1 (all zeros when the rule kept nothing); a client no kept output draws on
    gets 0, which the detection metrics read as rejected.
    """
    w = rule_weights.double().to(mixing.device) @ mixing.abs()
    total = float(w.sum())
    return w / total if total > 0 else torch.zeros_like(w)
