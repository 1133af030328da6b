"""Evaluate one model at every requested precision (fp32, fp16/bf16, int<b>, tacq<b>).

Clean accuracy, per-class accuracy, backdoor ASR and FP disagreement, with activation ranges calibrated
once on the server's calibration set.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from fl_sim.config.precision import ActivationRange, Granularity, QuantSpec
from fl_sim.config.schema import AttackConfig, EvaluationConfig, QuantScope
from fl_sim.data.attack_targets import target_sample
from fl_sim.data.federated import FederatedData
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.triggers import apply_trigger
from fl_sim.devices import pick_device
from fl_sim.models.metrics import accuracy, attack_success_rate, per_class_accuracy, predict
from fl_sim.quantization.intervals import WeightQuantizer
from fl_sim.quantization.registry import QuantOptions, quantized


def quant_options(cfg: EvaluationConfig) -> QuantOptions:
    """The quantizer settings of the evaluation section."""
    return QuantOptions(
        granularity=cfg.granularity,
        weight_symmetric=cfg.weight_symmetric,
        act_symmetric=cfg.act_symmetric,
        quantize_activations=cfg.scope is QuantScope.WEIGHTS_ACTIVATIONS,
        calibrated=cfg.activations is ActivationRange.CALIBRATED,
        observer=cfg.observer,
        percentile=cfg.percentile,
        tacq_keep=cfg.tacq_keep,
        batch_size=cfg.batch_size,
    )


def quant_spec(bits: int, cfg: EvaluationConfig) -> QuantSpec:
    """The fake quantizer an ``int<bits>`` precision stands for under ``cfg``."""
    return quant_options(cfg).spec(bits)


def weight_quantizer_for(bits: int, cfg: EvaluationConfig) -> WeightQuantizer:
    """Return the weight quantizer an int<bits> precision applies under the evaluation settings."""
    return WeightQuantizer(bits, cfg.weight_symmetric, cfg.granularity is Granularity.PER_CHANNEL)


def precision_context(
    model: nn.Module, name: str, cfg: EvaluationConfig, calibration: ExampleSet, device: torch.device
) -> AbstractContextManager[nn.Module]:
    """Return a context in which ``model`` computes at precision ``name``.

    Its activation ranges (and, for tacq<b>, its kept weights) are taken from ``calibration``.
    """
    return quantized(model, name, quant_options(cfg), calibration, device)


def evaluate_precisions(
    model: nn.Module,
    data: FederatedData,
    cfg: EvaluationConfig,
    attack: AttackConfig,
    precisions: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``model`` at every precision on the server's test set.

    {precision: metrics}: ``accuracy``, ``per_class_accuracy``,
    ``backdoor_asr`` (triggered non-target images classified as the target), ``target_class_accuracy``
    (accuracy on images of class ``target_label``), ``target_sample_success`` (x* classified as the
    target; None without a target sample) and ``disagreement`` (share of test inputs, clean and
    triggered, whose prediction differs from the FP32 model's).
    """
    device = pick_device(cfg.device)
    model = model.to(device)
    x, y = data.test.x, data.test.y
    trig, target = attack.trigger, attack.target_label
    xt = apply_trigger(x, trig, data.text)
    star = target_sample(data, attack)
    fp_pred = torch.cat([predict(model, x, cfg.batch_size, device), predict(model, xt, cfg.batch_size, device)])
    out: dict[str, dict[str, Any]] = {}
    for name in precisions or cfg.precisions:
        with precision_context(model, name, cfg, data.calibration, device):
            pred = predict(model, x, cfg.batch_size, device)
            pred_t = predict(model, xt, cfg.batch_size, device)
            pred_star = predict(model, star.x, cfg.batch_size, device) if star is not None else None
        in_target = y == target
        out[name] = {
            "accuracy": accuracy(pred, y),
            "per_class_accuracy": per_class_accuracy(pred, y, data.num_classes),
            "backdoor_asr": attack_success_rate(pred_t, y, target),
            "target_class_accuracy": accuracy(pred[in_target], y[in_target]) if in_target.any() else None,
            "target_sample_success": float(pred_star[0] == target) if pred_star is not None else None,
            "disagreement": float((torch.cat([pred, pred_t]) != fp_pred).float().mean()),
        }
    return out


ROUND_METRICS = ("accuracy", "backdoor_asr", "target_class_accuracy", "target_sample_success")


def round_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-precision figures kept in each round's history entry."""
    return {k: {m: v.get(m) for m in ROUND_METRICS} for k, v in metrics.items()}
