"""Deployment-time mitigations by registered name: what a deployer can do to the global model before quantizing it.

Each mitigation takes the protocol's ``EvalContext`` and returns a ``Mitigated``: per variant of its
settings (a label), per int<b> precision of ``evaluation.mitigation.bits``, the attack's metrics on the
server's test set, and what data it used. The ``mitigation`` protocol times each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fl_sim.config.schema import EvaluationConfig
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.evaluation.protocols import EvalContext
from fl_sim.registry import Registry

METRICS = ("accuracy", "backdoor_asr", "target_class_accuracy", "target_sample_success")
Row = dict[str, dict[str, Any]]  # precision -> metric -> value


@dataclass(frozen=True)
class Mitigated:
    """A mitigation's figures: ``rows`` (variant label -> precision -> metrics) and the ``data`` it used."""

    rows: dict[str, Row]
    data: dict[str, Any] = field(default_factory=dict)


Mitigation = Callable[[EvalContext], Mitigated]
MITIGATIONS: Registry[Mitigation] = Registry("mitigation")


def measure(ctx: EvalContext, model: nn.Module, precisions: list[str], cfg: EvaluationConfig | None = None) -> Row:
    """The attack's metrics of ``model`` at each precision (activation ranges calibrated on the server's set)."""
    s = ctx.scenario
    res = evaluate_precisions(model.to(ctx.device), ctx.data, cfg or s.evaluation, s.attack, precisions)
    return {p: {k: v.get(k) for k in METRICS} for p, v in res.items()}


def int_precisions(ctx: EvalContext) -> list[str]:
    """``int<b>`` for every ``evaluation.mitigation.bits``."""
    return [f"int{b}" for b in ctx.scenario.evaluation.mitigation.bits]


def calibration_use(ctx: EvalContext, labels: bool) -> dict[str, Any]:
    """The ``data`` entry of a mitigation that uses the server's calibration set (with or without its labels)."""
    return {"calibration_examples": len(ctx.data.calibration), "labels": labels}


def register_mitigations() -> None:
    """Import the mitigation modules (each registers itself)."""
    from fl_sim.evaluation.mitigations import efrap, finetune, lac, noise, requantize, tacq  # noqa: F401
