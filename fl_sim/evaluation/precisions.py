"""Evaluate one model at every requested precision: clean accuracy, per-class accuracy and
backdoor ASR, with activation ranges calibrated once on the server's calibration set."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from fl_sim.config.schema import EvaluationConfig, TriggerConfig
from fl_sim.data.federated import FederatedData
from fl_sim.data.triggers import apply_patch
from fl_sim.evaluation.metrics import accuracy, attack_success_rate, per_class_accuracy, predict
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized
from fl_sim.quantization.spec import ActivationRange, QuantSpec, parse_precision


def pick_device(choice: str) -> torch.device:
    """'auto' takes the GPU when there is one."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("evaluation.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def precision_context(model: nn.Module, name: str, cfg: EvaluationConfig, calibration: torch.Tensor, device: torch.device):
    """A context in which ``model`` computes at precision ``name``."""
    bits = parse_precision(name)
    if bits is None:
        return contextlib.nullcontext(model)
    spec = QuantSpec(bits=bits, granularity=cfg.granularity)
    ranges = None
    if cfg.activations is ActivationRange.CALIBRATED:
        batches = [calibration[i : i + cfg.batch_size].to(device) for i in range(0, len(calibration), cfg.batch_size)]
        ranges = calibrate_ranges(model, batches)
    return fake_quantized(model, spec, ranges)


def evaluate_precisions(
    model: nn.Module, data: FederatedData, cfg: EvaluationConfig, trigger: TriggerConfig, target: int,
    precisions: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """{precision: {accuracy, per_class_accuracy, backdoor_asr}} on the server's test set."""
    device = pick_device(cfg.device)
    model = model.to(device)
    x, y = data.test.x, data.test.y
    xt = apply_patch(x, trigger.size, trigger.margin, trigger.value)
    out: dict[str, dict[str, Any]] = {}
    for name in precisions or cfg.precisions:
        with precision_context(model, name, cfg, data.calibration.x, device):
            pred = predict(model, x, cfg.batch_size, device)
            pred_t = predict(model, xt, cfg.batch_size, device)
        out[name] = {
            "accuracy": accuracy(pred, y),
            "per_class_accuracy": per_class_accuracy(pred, y, data.num_classes),
            "backdoor_asr": attack_success_rate(pred_t, y, target),
        }
    return out
