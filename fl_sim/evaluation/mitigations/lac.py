"""Mitigation ``lac``: layer-wise activation correction towards the FP model (after LAC, Li et al., ICML 2024).

Per channel of each quantized layer, in order: the quantized activations get the FP model's mean and
standard deviation on the server's UNLABELED calibration set, and are clipped to the FP range
(``fl_sim.quantization.activation_correction``; the paper takes the FP statistics from BatchNorm,
which fl_sim's models do not have).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from torch import nn

from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, Row, calibration_use, measure
from fl_sim.evaluation.precisions import precision_context
from fl_sim.evaluation.protocols import EvalContext
from fl_sim.quantization.activation_correction import correct_activations


@MITIGATIONS.register(
    "lac", "LAC: per-channel activation correction of the quantized model to the FP statistics and range (no labels)"
)
def lac(ctx: EvalContext) -> Mitigated:
    """Measure the corrected model at every b."""
    ev = ctx.scenario.evaluation
    settings = ev.mitigation.lac
    model = ctx.model.to(ctx.device)
    calib = ctx.data.calibration
    row: Row = {}
    for b in ev.mitigation.bits:

        def quantized(m: nn.Module, name: str = f"int{b}") -> AbstractContextManager[nn.Module]:
            return precision_context(m, name, ev, calib, ctx.device)

        corrected = correct_activations(model, quantized, calib.x.to(ctx.device), settings.slack, settings.clip)
        row.update(measure(ctx, corrected, [f"int{b}"]))
    label = "moments+clip" if settings.clip else "moments"
    return Mitigated({label: row}, calibration_use(ctx, labels=False))
