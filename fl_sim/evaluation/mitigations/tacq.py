"""Mitigation ``tacq``: keep the most task-salient weights in 16-bit (TaCQ, Xiao et al. 2025, ../REFERENCE §4).

Saliency from the server's labeled calibration set; one variant per kept share in
``evaluation.mitigation.keep``, at each b of ``bits`` (reported under ``int<b>``: tacq<b> is int<b> with
the kept weights in 16-bit).
"""

from __future__ import annotations

from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, Row, calibration_use, measure
from fl_sim.evaluation.protocols import EvalContext


@MITIGATIONS.register("tacq", "TaCQ: the most task-salient weights (labeled calibration set) kept in 16-bit, the rest int<b>")
def tacq(ctx: EvalContext) -> Mitigated:
    """Measure tacq<b> for every kept share and bit width."""
    ev = ctx.scenario.evaluation
    rows: dict[str, Row] = {}
    for keep in ev.mitigation.keep:
        cfg = ev.model_copy(update={"tacq_keep": keep})
        got = measure(ctx, ctx.model, [f"tacq{b}" for b in ev.mitigation.bits], cfg)
        rows[f"keep={100 * keep:g}%"] = {name.replace("tacq", "int"): m for name, m in got.items()}
    return Mitigated(rows, calibration_use(ctx, labels=True))
