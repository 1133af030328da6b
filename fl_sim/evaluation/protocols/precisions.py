"""Protocol ``precisions``: clean accuracy, per-class accuracy, backdoor ASR and FP disagreement at
every evaluation precision (the run's ``final`` section is this protocol on the final model)."""

from __future__ import annotations

from typing import Any

from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext


@PROTOCOLS.register("precisions", "accuracy, per-class accuracy, backdoor ASR and FP/quantized disagreement per precision")
def run(ctx: EvalContext) -> dict[str, Any]:
    s = ctx.scenario
    return evaluate_precisions(ctx.model, ctx.data, s.evaluation, s.attack)
