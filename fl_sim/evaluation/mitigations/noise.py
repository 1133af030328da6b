"""Mitigation ``noise``: Gaussian noise of sigma grid steps added to the weights before rounding.

Egashira et al. (NeurIPS 2024, ../REFERENCE §8) suggest it against attacks that place weights inside
their quantization intervals. Per sigma (in steps of each layer's grid at b bits) and b, ``draws``
noise draws: the mean accuracy and ASR, and the deployer's worst draw (lowest accuracy, highest ASR).
No data.
"""

from __future__ import annotations

from typing import Any

from fl_sim.evaluation.mitigations import MITIGATIONS, Mitigated, Row, measure
from fl_sim.evaluation.precisions import weight_quantizer_for
from fl_sim.evaluation.protocols import EvalContext
from fl_sim.quantization.weight_noise import weight_noise


def summarize_draws(draws: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean accuracy / ASR over the draws, and the worst draw's (lowest accuracy, highest ASR)."""
    acc = [d["accuracy"] for d in draws]
    asr = [d["backdoor_asr"] for d in draws]
    return {
        "accuracy": sum(acc) / len(acc),
        "backdoor_asr": sum(asr) / len(asr),
        "worst_accuracy": min(acc),
        "worst_backdoor_asr": max(asr),
        "draws": len(draws),
    }


@MITIGATIONS.register("noise", "Gaussian noise of sigma grid steps on the weights before rounding; mean and worst of K draws")
def noise(ctx: EvalContext) -> Mitigated:
    """Measure every sigma at every b, ``draws`` times each."""
    ev = ctx.scenario.evaluation
    settings = ev.mitigation.noise
    model = ctx.model.to(ctx.device)
    gen = ctx.generator("mitigation/noise")
    rows: dict[str, Row] = {}
    for sigma in settings.sigmas:
        row: Row = {}
        for b in ev.mitigation.bits:
            q = weight_quantizer_for(b, ev)
            draws = []
            for _ in range(settings.draws):
                with weight_noise(model, q, sigma, gen):
                    draws.append(measure(ctx, model, [f"int{b}"])[f"int{b}"])
            row[f"int{b}"] = summarize_draws(draws)
        rows[f"sigma={sigma:g}"] = row
    return Mitigated(rows, {"calibration_examples": 0, "labels": False, "draws": settings.draws})
