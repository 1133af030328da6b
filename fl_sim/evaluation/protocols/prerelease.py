"""Protocol ``prerelease``: the server's check of the final model before it ships quantized.

Two label-free, trigger-free signals on the server's calibration set, for int<b> = ``prerelease.bits``:
the share of clean calibration inputs on which FP32 and int<b> disagree, and the patch probe
(``fl_sim.evaluation.patch_probe``): a small patch optimised on one half of the calibration set, at
each position of an evenly spaced grid, to split int<b> from FP32, and a uniform-noise patch at the same
positions; the score is the larger disagreement either causes on the other half. The model is
flagged when the score reaches ``prerelease.threshold``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from fl_sim.errors import UserError
from fl_sim.evaluation.patch_probe import ProbeConfig, disagreement, optimise_patch, patch_positions, stamp
from fl_sim.evaluation.precisions import precision_context
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext


@PROTOCOLS.register(
    "prerelease",
    "pre-release check of the final model: FP/int<b> disagreement on clean calibration inputs and under an "
    "optimised patch (trigger-agnostic, no labels) vs a noise patch; verdict against a threshold",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Probe ``ctx.model`` (images only: a text dataset is a UserError).

    Returns
    -------
    dict
        ``score`` (the larger of ``probe_score`` and ``noise_score``) and ``flagged`` (also under ``index``),
        ``threshold``, ``precision``, ``clean_disagreement``, ``probe`` and ``noise_patch`` (disagreement per
        position, held-out half), ``examples`` (optimised on, scored on).
    """
    if ctx.data.text is not None or ctx.data.calibration.x.dim() != 4:
        raise UserError("protocol prerelease probes image patches; it has no text counterpart yet (token ids are discrete)")
    ev = ctx.scenario.evaluation
    pr = ev.prerelease
    cfg = ProbeConfig(patch=pr.patch, steps=pr.steps, lr=pr.lr)
    name = f"int{pr.bits}"
    gen = ctx.generator("prerelease")
    calib = ctx.data.calibration
    x = calib.x[torch.randperm(len(calib), generator=gen)].to(ctx.device)
    fit, held = x[: len(x) // 2], x[len(x) // 2 :]
    fp_model = ctx.model.to(ctx.device).eval()
    twin = copy.deepcopy(fp_model).requires_grad_(False)
    try:
        positions = patch_positions(x.shape[-2], x.shape[-1], pr.patch, pr.positions_per_side)
    except ValueError as exc:
        raise UserError(f"evaluation.prerelease.patch: {exc}") from None
    with precision_context(twin, name, ev, calib, ctx.device):
        clean = disagreement(fp_model, twin, x)
        probe, noise = {}, {}
        for top, left in positions:
            key = f"{top},{left}"
            patch = optimise_patch(fp_model, twin, fit, top, left, cfg, gen)
            probe[key] = disagreement(fp_model, twin, stamp(held, patch, top, left))
            rand = torch.rand(patch.shape, generator=gen).to(ctx.device)
            noise[key] = disagreement(fp_model, twin, stamp(held, rand, top, left))
    # Both patches are trigger-agnostic probes: the score is the larger split either finds.
    best_probe, best_noise = max(probe.values()), max(noise.values())
    score = max(best_probe, best_noise)
    verdict = {"score": score, "flagged": score >= pr.threshold}
    return {
        "index": verdict,
        **verdict,
        "threshold": pr.threshold,
        "precision": name,
        "clean_disagreement": clean,
        "probe": probe,
        "noise_patch": noise,
        "probe_score": best_probe,
        "noise_score": best_noise,
        "examples": {"optimised_on": len(fit), "scored_on": len(held)},
    }
