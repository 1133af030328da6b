"""Protocol ``rounding_margin``: how stable the deployed model's quantized behaviour is.

A quantization attack lives in which side of a rounding boundary each weight falls. This protocol
measures, on the final global model:

- per quantized layer and evaluated int<b> precision, the histogram of each weight's distance to
  its nearest rounding boundary, in steps (0 = on a boundary, 0.5 = at the centre of its interval);
- clean accuracy and backdoor ASR at each int<b> precision when Gaussian noise of ``sigma`` steps
  (of that layer's grid at that precision) is added to the weights before rounding, over ``draws``
  random draws: the stability of a quantization attack, and Egashira et al.'s (2024) "noise before
  rounding" defense, in one measurement;
- the same figures under the deployer's other quantizer variants (per-channel vs per-tensor,
  symmetric vs asymmetric weights, min-max vs percentile activation observer).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from fl_sim.config.precision import Granularity, PrecisionKind, parse_precision
from fl_sim.config.schema import EvaluationConfig
from fl_sim.data.triggers import apply_trigger
from fl_sim.errors import UserError
from fl_sim.evaluation.precisions import precision_context, weight_quantizer_for
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models.metrics import accuracy, attack_success_rate, predict
from fl_sim.quantization.fake_quant_model import quantizable_layers
from fl_sim.quantization.intervals import WeightQuantizer, boundary_distance
from fl_sim.quantization.observers import Observer
from fl_sim.quantization.weight_noise import weight_noise


def distance_histograms(model: nn.Module, quantizer: WeightQuantizer, bins: int) -> dict[str, Any]:
    """Histogram, per quantized layer, of the weights' distance to their nearest rounding boundary.

    Per quantized layer: counts of the weights' boundary distance in ``bins`` equal bins over
    [0, 0.5] steps, and the shares within 0.01 / 0.05 / 0.1 steps of a boundary.

    Returns
    -------
    dict
        ``bin_edges`` (``bins + 1`` edges, in steps) and ``layers``: {layer name: {``counts``, ``within``}}.
    """
    out = {}
    for name, m in quantizable_layers(model):
        d = boundary_distance(cast(torch.Tensor, m.weight).detach().float().cpu(), quantizer).flatten()
        counts = torch.histc(d, bins=bins, min=0.0, max=0.5)
        out[name] = {
            "counts": [int(c) for c in counts],
            "within": {f"{t:g}": float((d < t).float().mean()) for t in (0.01, 0.05, 0.1)},
        }
    return {"bin_edges": [0.5 * i / bins for i in range(bins + 1)], "layers": out}


def _scores(ctx: EvalContext, precision: str, cfg: EvaluationConfig, xt: torch.Tensor) -> dict[str, float]:
    data, a = ctx.data, ctx.scenario.attack
    with precision_context(ctx.model, precision, cfg, data.calibration, ctx.device):
        pred = predict(ctx.model, data.test.x, cfg.batch_size, ctx.device)
        pred_t = predict(ctx.model, xt, cfg.batch_size, ctx.device)
    return {"accuracy": accuracy(pred, data.test.y), "backdoor_asr": attack_success_rate(pred_t, data.test.y, a.target_label)}


def _spread(values: list[float], worst_is_low: bool) -> dict[str, float]:
    """Mean, worst (for the deployer) and best over the draws."""
    mean = sum(values) / len(values)
    lo, hi = min(values), max(values)
    return {"mean": mean, "worst": lo if worst_is_low else hi, "best": hi if worst_is_low else lo}


def variants(cfg: EvaluationConfig) -> dict[str, EvaluationConfig]:
    """Return the deployer's quantizer as configured, and one change at a time from it."""
    flip = Granularity.PER_TENSOR if cfg.granularity is Granularity.PER_CHANNEL else Granularity.PER_CHANNEL
    return {
        "as_configured": cfg,
        flip.value: cfg.model_copy(update={"granularity": flip}),
        ("asymmetric" if cfg.weight_symmetric else "symmetric") + "_weights": cfg.model_copy(
            update={"weight_symmetric": not cfg.weight_symmetric}
        ),
        ("percentile" if cfg.observer is Observer.MINMAX else "minmax") + "_observer": cfg.model_copy(
            update={"observer": Observer.PERCENTILE if cfg.observer is Observer.MINMAX else Observer.MINMAX}
        ),
    }


@PROTOCOLS.register(
    "rounding_margin",
    "stability of the quantized model: weights' distance to rounding boundaries, accuracy "
    "and ASR under weight noise of sigma steps before rounding, and under other quantizer variants",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Measure boundary distances, noise-before-rounding stability and quantizer variants at every int<b> precision.

    Returns
    -------
    dict
        ``sigmas`` (also under ``index``): {sigma: {precision: mean/worst/best ``accuracy`` and ``backdoor_asr``}};
        ``draws``; ``unperturbed`` (fp32 and each int<b>); ``quantizer_variants``: {variant: {precision: scores}};
        ``boundary_distance``: {precision: ``distance_histograms``}.
    """
    s = ctx.scenario
    cfg, rm = s.evaluation, s.evaluation.rounding_margin
    ints = [p for p in cfg.precisions if parse_precision(p).kind is PrecisionKind.INT]
    if not ints:
        raise UserError("protocol rounding_margin needs an int<b> precision in evaluation.precisions")
    model = ctx.model.to(ctx.device)
    xt = apply_trigger(ctx.data.test.x, s.attack.trigger, ctx.data.text)
    gen = ctx.generator("rounding_margin")
    unperturbed = {p: _scores(ctx, p, cfg, xt) for p in ["fp32", *ints]}
    by_sigma: dict[str, dict[str, Any]] = {}
    for sigma in rm.sigmas:
        row = {}
        for p in ints:
            q = weight_quantizer_for(cast(int, parse_precision(p).bits), cfg)
            draws = []
            for _ in range(rm.draws):
                with weight_noise(model, q, sigma, gen):
                    draws.append(_scores(ctx, p, cfg, xt))
            row[p] = {
                "accuracy": _spread([d["accuracy"] for d in draws], worst_is_low=True),
                "backdoor_asr": _spread([d["backdoor_asr"] for d in draws], worst_is_low=False),
            }
        by_sigma[f"{sigma:g}"] = row
    quantizers = {name: {p: _scores(ctx, p, vcfg, xt) for p in ints} for name, vcfg in variants(cfg).items()}
    histograms = {
        p: distance_histograms(model, weight_quantizer_for(cast(int, parse_precision(p).bits), cfg), rm.bins) for p in ints
    }
    return {
        "index": by_sigma,
        "sigmas": by_sigma,
        "draws": rm.draws,
        "unperturbed": unperturbed,
        "quantizer_variants": quantizers,
        "boundary_distance": histograms,
    }
