"""Protocol ``mitigation``: deployment-time defenses against a quantization-conditioned attack.

What a deployer can do to the finished global model before quantizing it, without retraining the
federation: each registered mitigation of ``evaluation.mitigation.methods`` (``fl-sim list
mitigations``), measured at int<b> for every ``evaluation.mitigation.bits`` on the attack's own metrics
(clean accuracy, backdoor ASR, target-class accuracy, target-sample success), next to the model as
deployed (plain round-to-nearest int<b>). Activation ranges are calibrated on the server's calibration
set as in every int<b> evaluation; each method also reports the data it used and its wall time.
"""

from __future__ import annotations

import time
from typing import Any

from fl_sim.evaluation.mitigations import MITIGATIONS, int_precisions, measure, register_mitigations
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext

register_mitigations()


@PROTOCOLS.register(
    "mitigation",
    "deployment-time defenses before quantizing (evaluation.mitigation.methods; fl-sim list mitigations): "
    "tacq, finetune, noise, efrap, lac, requantize vs the model as deployed",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Run every configured mitigation on ``ctx.model`` (none changes it).

    Returns
    -------
    dict
        ``as_deployed`` (fp32 and each int<b>) and ``methods``: {name: {``rows`` (variant -> precision ->
        metrics), ``data`` (calibration examples, labels used), ``seconds``}}.
    """
    m = ctx.scenario.evaluation.mitigation
    methods: dict[str, Any] = {}
    for name in m.methods:
        t0 = time.monotonic()
        out = MITIGATIONS.get(name)(ctx)
        methods[name] = {"rows": out.rows, "data": out.data, "seconds": time.monotonic() - t0}
    return {"as_deployed": measure(ctx, ctx.model, ["fp32", *int_precisions(ctx)]), "methods": methods}
