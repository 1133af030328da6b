"""Mitigation ``finetune``: a short server-side fine-tune on the calibration set before quantizing.

``finetune_steps`` minibatch steps at ``finetune_lr`` on the server's labeled calibration set (never
given to clients), with the scenario's optimizer settings; the fine-tuned model is then measured at
FP32 and at each int<b> (a fine-tune can move the backdoor into FP32, so FP32 is reported too).
"""

from __future__ import annotations

import copy

from fl_sim.clients.local_training import cross_entropy_loss, train_steps
from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, calibration_use, int_precisions, measure
from fl_sim.evaluation.protocols import EvalContext


@MITIGATIONS.register("finetune", "server-side fine-tune on the labeled calibration set, then quantize")
def finetune(ctx: EvalContext) -> Mitigated:
    """Fine-tune a deep copy of the model and measure it."""
    m = ctx.scenario.evaluation.mitigation
    tuned = copy.deepcopy(ctx.model).to(ctx.device)
    loss = train_steps(
        tuned,
        ctx.data.calibration,
        cross_entropy_loss,
        ctx.scenario.training,
        m.finetune_steps,
        ctx.generator("mitigation/finetune"),
        ctx.device,
        lr=m.finetune_lr,
    )
    row = measure(ctx, tuned, ["fp32", *int_precisions(ctx)])
    return Mitigated({f"steps={m.finetune_steps}": row}, {**calibration_use(ctx, labels=True), "final_loss": loss})
