"""Evaluation protocols by registered name.

Each takes an ``EvalContext`` and returns a JSON-able section for results.json
(``evaluation.<name>``). ``fl-sim eval RUN_DIR --protocol NAME`` runs them on a saved global model;
``evaluation.protocols`` runs them at the end of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.registry import Registry
from fl_sim.seeding import torch_generator


@dataclass(frozen=True)
class EvalContext:
    """What a protocol evaluates: the global model, the federation's data, the scenario and the device."""

    model: nn.Module
    data: FederatedData
    scenario: Scenario
    device: torch.device

    def generator(self, salt: str) -> torch.Generator:
        """Return a stream of its own for each protocol, derived from the scenario seed and ``salt``."""
        return torch_generator(self.scenario.seed, "evaluation", salt)


Protocol = Callable[[EvalContext], dict[str, Any]]
PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocols() -> None:
    """Import the protocol modules (each registers itself)."""
    from fl_sim.evaluation.protocols import (  # noqa: F401
        data_free,
        kernel_check,
        mitigation,
        precisions,
        prerelease,
        robustness,
        rounding_margin,
        word_substitution,
        worst_case,
    )
