"""Protocol ``precisions``: clean accuracy, per-class accuracy, backdoor ASR and FP disagreement at every precision.

The run's ``final`` section is this protocol on the final model.
"""

from __future__ import annotations

from typing import Any

from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext


@PROTOCOLS.register("precisions", "accuracy, per-class accuracy, backdoor ASR and FP/quantized disagreement per precision")
def run(ctx: EvalContext) -> dict[str, Any]:
    """Evaluate ``ctx.model`` at every precision of ``evaluation.precisions`` ({precision: metrics})."""
    s = ctx.scenario
    return evaluate_precisions(ctx.model, ctx.data, s.evaluation, s.attack)
