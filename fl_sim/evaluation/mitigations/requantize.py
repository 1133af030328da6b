"""Mitigation ``requantize``: the deployer quantizes another way than the attack assumed.

A backdoor planted for one quantizer (per-tensor, symmetric, min-max ranges, round-to-nearest) may not
survive another: per-channel weight scales, asymmetric weights, percentile or MSE activation
observers (each one change from the configured quantizer), or AdaRound-style rounding learned on the
unlabeled calibration set (Nagel et al. 2020; EFRAP's learner without its flipped start).
"""

from __future__ import annotations

from fl_sim.config.precision import Granularity, Observer
from fl_sim.config.schema import EvaluationConfig, RequantizeVariant
from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, Row, calibration_use, int_precisions, measure
from fl_sim.evaluation.mitigations.efrap import learned_rounding_row
from fl_sim.evaluation.protocols import EvalContext


def variant_config(ev: EvaluationConfig, v: RequantizeVariant) -> EvaluationConfig:
    """The evaluation settings with the one change ``v`` stands for (not for ``adaround``)."""
    if v is RequantizeVariant.PER_CHANNEL:
        flip = Granularity.PER_TENSOR if ev.granularity is Granularity.PER_CHANNEL else Granularity.PER_CHANNEL
        return ev.model_copy(update={"granularity": flip})
    if v is RequantizeVariant.ASYMMETRIC:
        return ev.model_copy(update={"weight_symmetric": not ev.weight_symmetric})
    if v is RequantizeVariant.PERCENTILE:
        return ev.model_copy(update={"observer": Observer.PERCENTILE})
    if v is RequantizeVariant.MSE:
        return ev.model_copy(update={"observer": Observer.MSE})
    raise ValueError(f"{v.value} is not a quantizer setting")


@MITIGATIONS.register(
    "requantize", "the deployer's other quantizers: per-channel, asymmetric, percentile / MSE observers, AdaRound rounding"
)
def requantize(ctx: EvalContext) -> Mitigated:
    """Measure each configured variant at every b."""
    ev = ctx.scenario.evaluation
    rows: dict[str, Row] = {}
    for v in ev.mitigation.requantize:
        if v is RequantizeVariant.ADAROUND:
            rows[v.value] = learned_rounding_row(ctx, 0.0, "mitigation/adaround")
        else:
            rows[v.value] = measure(ctx, ctx.model, int_precisions(ctx), variant_config(ev, v))
    return Mitigated(rows, calibration_use(ctx, labels=False))
