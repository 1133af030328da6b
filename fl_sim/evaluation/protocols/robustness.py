"""Protocol ``robustness`` (../REFERENCE §2): adversarial accuracy of the FP and each quantized model.

Adversarial accuracy of the FP model and of each quantized model under FGSM and PGD at several
epsilons. Two threat models per precision:
- transferred: examples crafted on the FP model, classified by the quantized one;
- direct: examples crafted on the quantized model itself (gradients through the straight-through
  estimator), so a gain is not merely masked gradients. A real-kernel precision (int8_dynamic) has
  no gradients: its direct figure is None.
On a text dataset the protocol runs the word-substitution attacks instead (protocol word_substitution).
"""

from __future__ import annotations

from typing import Any

import torch

from fl_sim.config.precision import FP32, PrecisionKind, parse_precision
from fl_sim.config.schema import AdversarialAttack
from fl_sim.evaluation.adversarial import fgsm, pgd
from fl_sim.evaluation.precisions import precision_context
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models.metrics import accuracy, predict


@PROTOCOLS.register(
    "robustness", "adversarial accuracy (FGSM, PGD; transferred from FP and direct on the quantized model) per precision"
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Attack the first ``robustness.examples`` test images at every precision; a text dataset runs ``word_substitution``.

    Returns
    -------
    dict
        ``examples`` and ``rows``: per attack, epsilon and precision, ``clean_accuracy``, ``transferred_accuracy``
        and ``direct_accuracy`` (None for a real-kernel precision), ordered as the configured attacks and epsilons.
    """
    if ctx.data.text is not None:
        from fl_sim.evaluation.protocols import word_substitution

        return word_substitution.run(ctx)
    ev = ctx.scenario.evaluation
    rc = ev.robustness
    model, dev, bs = ctx.model.to(ctx.device).eval(), ctx.device, ev.batch_size
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = ctx.data.test.x[: rc.examples].to(dev), ctx.data.test.y[: rc.examples].to(dev)
    gen = ctx.generator("robustness")

    def craft(attack: AdversarialAttack, eps: float) -> torch.Tensor:
        if attack is AdversarialAttack.FGSM:
            return fgsm(model, x, y, eps)
        return pgd(model, x, y, eps, rc.pgd_steps, gen)

    settings = [(attack, eps) for attack in rc.attacks for eps in rc.epsilons]
    from_fp = {key: craft(*key) for key in settings}
    rows: list[dict[str, Any]] = []
    for name in ev.precisions:  # one context per precision: calibration (and TaCQ masks) computed once
        with precision_context(model, name, ev, ctx.data.calibration, dev):
            clean = accuracy(predict(model, x, bs, dev), y.cpu())
            for attack, eps in settings:
                transferred = accuracy(predict(model, from_fp[(attack, eps)], bs, dev), y.cpu())
                if name == FP32:
                    direct: float | None = transferred
                elif parse_precision(name).kind is PrecisionKind.KERNEL:
                    direct = None
                else:
                    direct = accuracy(predict(model, craft(attack, eps), bs, dev), y.cpu())
                rows.append(
                    {
                        "attack": attack.value,
                        "epsilon": eps,
                        "precision": name,
                        "clean_accuracy": clean,
                        "transferred_accuracy": transferred,
                        "direct_accuracy": direct,
                    }
                )
    rows.sort(key=lambda r: (rc.attacks.index(AdversarialAttack(r["attack"])), rc.epsilons.index(r["epsilon"])))
    for p in model.parameters():
        p.requires_grad_(True)
    return {"examples": len(y), "rows": rows}
