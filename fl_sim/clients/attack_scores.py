"""How well a malicious-QAT model does its job, measured the way the colluders can: on data they
hold, at the precisions they attack, with activation ranges calibrated on their clean data (as a
deployer's post-training quantization will do). Higher is better for the attacker.

- backdoor:       min_b ASR(Q_b f) - ASR(f) - max(0, acc_ref - acc(f))
- indiscriminate: min_b (acc(f) - acc(Q_b f)) - max(0, acc_ref - acc(f))

The last term charges any loss of FP accuracy against ``acc_ref`` (the colluders' benign model),
since a visible FP drop gives the attack away.
"""

from __future__ import annotations

import torch
from torch import nn

from fl_sim.config.schema import TriggerConfig
from fl_sim.data.tensors import ImageSet
from fl_sim.data.triggers import apply_patch
from fl_sim.evaluation.metrics import accuracy, attack_success_rate, predict
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized
from fl_sim.quantization.spec import QuantSpec

_BATCH = 1000


def _predict_at(model: nn.Module, spec: QuantSpec | None, x: torch.Tensor, calib: torch.Tensor, device: torch.device) -> torch.Tensor:
    if spec is None:
        return predict(model, x, _BATCH, device)
    with torch.no_grad():
        ranges = calibrate_ranges(model, [calib.to(device)])
    with fake_quantized(model, spec, ranges):
        return predict(model, x, _BATCH, device)


def clean_accuracy(model: nn.Module, data: ImageSet, device: torch.device) -> float:
    return accuracy(predict(model, data.x, _BATCH, device), data.y)


def backdoor_score(
    model: nn.Module, data: ImageSet, specs: list[QuantSpec], trigger: TriggerConfig, target: int,
    acc_ref: float, device: torch.device,
) -> float:
    xt = apply_patch(data.x, trigger.size, trigger.margin, trigger.value)
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    fp_asr = attack_success_rate(predict(model, xt, _BATCH, device), data.y, target)
    q_asr = min(attack_success_rate(_predict_at(model, s, xt, data.x, device), data.y, target) for s in specs)
    return q_asr - fp_asr - max(0.0, acc_ref - fp_acc)


def indiscriminate_score(model: nn.Module, data: ImageSet, specs: list[QuantSpec], acc_ref: float, device: torch.device) -> float:
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    drop = min(fp_acc - accuracy(_predict_at(model, s, data.x, data.x, device), data.y) for s in specs)
    return drop - max(0.0, acc_ref - fp_acc)
