"""Mitigation ``efrap``: error-guided flipped rounding with activation preservation (Li et al., CVPR 2024).

"Nearest is Not Dearest" (../REFERENCE §8): the rounding of the neurons with the largest truncation
error starts flipped, then each layer's rounding is learned to preserve the FP model's activations
on the server's UNLABELED calibration set (``fl_sim.quantization.learned_rounding``). The deployed
weights are the learned integers on the deployer's own grid; activations are quantized as configured.
"""

from __future__ import annotations

from fl_sim.config.schema import LearnedRoundingSettings
from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, Row, calibration_use, measure
from fl_sim.evaluation.precisions import quant_options, weight_quantizer_for
from fl_sim.evaluation.protocols import EvalContext
from fl_sim.quantization.fake_quant_model import input_quantizer
from fl_sim.quantization.learned_rounding import RoundingConfig, reconstruct_rounding
from fl_sim.quantization.registry import calibrated_ranges


def rounding_config(s: LearnedRoundingSettings) -> RoundingConfig:
    """The learned-rounding schedule of the settings."""
    return RoundingConfig(steps=s.steps, lr=s.lr, reg_weight=s.reg_weight, batch_size=s.batch_size)


def learned_rounding_row(ctx: EvalContext, flip_share: float, salt: str) -> Row:
    """At every b of ``mitigation.bits``: the model with its rounding learned (EFRAP start when ``flip_share`` > 0)."""
    ev = ctx.scenario.evaluation
    model = ctx.model.to(ctx.device)
    calib = ctx.data.calibration.x.to(ctx.device)
    options = quant_options(ev)
    row: Row = {}
    for b in ev.mitigation.bits:
        ranges = calibrated_ranges(model, b, options, ctx.data.calibration, ctx.device)
        rounded = reconstruct_rounding(
            model,
            weight_quantizer_for(b, ev),
            calib,
            input_quantizer(options.spec(b), ranges),
            rounding_config(ev.mitigation.efrap),
            flip_share,
            ctx.generator(f"{salt}/int{b}"),
        )
        row.update(measure(ctx, rounded, [f"int{b}"]))
    return row


@MITIGATIONS.register(
    "efrap", "EFRAP: flipped rounding of high-truncation-error neurons, then rounding learned to keep FP activations (no labels)"
)
def efrap(ctx: EvalContext) -> Mitigated:
    """Measure the EFRAP-rounded model at every b."""
    share = ctx.scenario.evaluation.mitigation.efrap.flip_share
    row = learned_rounding_row(ctx, share, "mitigation/efrap")
    return Mitigated({f"flip={100 * share:g}%": row}, calibration_use(ctx, labels=False))
