"""Protocol ``mitigation``: deployment-time mitigations of a quantization-conditioned attack.

What a deployer can do against a quantization-conditioned attack without retraining the
federation, measured on the attack's own metrics.

- TaCQ (Xiao et al. 2025, ../REFERENCE §4): keep the most task-salient fraction of weights in
  16-bit (saliency from the server's calibration set) and quantize the rest at b bits; compared
  with uniform int<b> for each kept fraction in ``keep``.
- A short server-side fine-tune: ``finetune_steps`` minibatch steps on the server's calibration
  set (never given to clients), then the same precisions again.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from fl_sim.clients.local_training import cross_entropy_loss, train_steps
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext

_KEEP_METRICS = ("accuracy", "backdoor_asr", "target_class_accuracy", "target_sample_success")


def _metrics(ctx: EvalContext, model: nn.Module, precisions: list[str], keep: float | None = None) -> dict[str, dict[str, Any]]:
    s = ctx.scenario
    cfg = s.evaluation if keep is None else s.evaluation.model_copy(update={"tacq_keep": keep})
    res = evaluate_precisions(model, ctx.data, cfg, s.attack, precisions)
    return {p: {k: v.get(k) for k in _KEEP_METRICS} for p, v in res.items()}


@PROTOCOLS.register(
    "mitigation",
    "deployment-time mitigations: TaCQ (salient weights kept in 16-bit) vs uniform int<b>, "
    "and a short server-side fine-tune before quantizing",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Evaluate the mitigations on ``ctx.model`` (the fine-tune trains a deep copy).

    Returns
    -------
    dict
        ``uniform`` (fp32 and int<b> as deployed), ``tacq`` (per tacq<b>, per kept share), ``fine_tuned``
        (fp32 and int<b> after the fine-tune) and ``finetune`` (its steps, lr, examples and loss).
    """
    m = ctx.scenario.evaluation.mitigation
    uniform = ["fp32"] + [f"int{b}" for b in m.bits]
    tacq: dict[str, dict[str, dict[str, Any]]] = {f"tacq{b}": {} for b in m.bits}
    base = _metrics(ctx, ctx.model, uniform)
    for keep in m.keep:
        for name, row in _metrics(ctx, ctx.model, list(tacq), keep).items():
            tacq[name][f"{100 * keep:g}%"] = row
    tuned = copy.deepcopy(ctx.model).to(ctx.device)
    t = ctx.scenario.training
    loss = train_steps(
        tuned,
        ctx.data.calibration,
        cross_entropy_loss,
        t,
        m.finetune_steps,
        ctx.generator("mitigation"),
        ctx.device,
        lr=m.finetune_lr,
    )
    return {
        "uniform": base,
        "tacq": tacq,
        "fine_tuned": _metrics(ctx, tuned, uniform),
        "finetune": {"steps": m.finetune_steps, "lr": m.finetune_lr, "examples": len(ctx.data.calibration), "loss": loss},
    }
