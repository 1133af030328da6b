"""The strategy registry. A registered strategy names its parameter model and how to build the
Flower strategy class and keyword arguments from validated parameters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from flwr.serverapp.strategy import Strategy
from pydantic import BaseModel, ConfigDict, Field

from fl_sim.registry import Registry


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssumedF(NoParams):
    """Parameters of a defense that assumes a number f of malicious clients."""

    num_malicious: int | None = Field(None, ge=0, description="assumed f (default: attack.num_malicious)")

    def f(self, default: int) -> int:
        return default if self.num_malicious is None else self.num_malicious


class StrategySpec(ABC):
    """How to make one aggregation strategy from its scenario parameters."""

    Params: ClassVar[type[BaseModel]] = NoParams

    @staticmethod
    @abstractmethod
    def build(params: Any, num_malicious_assumed: int, cohort_size: int) -> tuple[type[Strategy], dict[str, Any]]:
        """The Flower strategy class and its keyword arguments (sampling arguments excluded).
        ``num_malicious_assumed`` is the defender's assumed count f (never the identities)."""

    @staticmethod
    def decisions(params: Any, num_malicious_assumed: int, cohort_size: int, updates: Any, weights: Any) -> Any:
        """(n,) float64 weights the rule gives the round's (n, d) updates (0 = rejected), for the
        detection metrics; None for rules that make no per-client decision (coordinate-wise ones)."""
        return None


STRATEGIES: Registry[type[StrategySpec]] = Registry("strategy")
