"""How well a malicious-QAT model does its job, measured the way the colluders can.

The scores are taken on data the colluders hold, at the precisions they attack, with activation
ranges calibrated on their clean data (as a deployer's post-training quantization will do). Higher
is better for the attacker.

- backdoor:       min_b ASR(Q_b f) - ASR(f) - max(0, acc_ref - acc(f))
- indiscriminate: min_b (acc(f) - acc(Q_b f)) - max(0, acc_ref - acc(f))
- targeted class: min_b (acc_c(f) - acc_c(Q_b f)) - max(0, acc_ref - acc(f))     (acc_c: on class c)
- targeted sample: min_b [Q_b f(x*) = t] - [f(x*) = t] - max(0, acc_ref - acc(f))
- FP backdoor:     ASR(f) - max(0, acc_ref - acc(f))
- label flip:      share of source-class examples classified as the target (targeted flip), or
                   acc_ref - acc(f) (every label flipped)

The last term charges any loss of FP accuracy against ``acc_ref`` (the colluders' benign model),
since a visible FP drop gives the attack away.
"""

from __future__ import annotations

import torch
from torch import nn

from fl_sim.config.precision import QuantSpec
from fl_sim.config.schema import TriggerConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.data.triggers import apply_trigger
from fl_sim.models.metrics import accuracy, attack_success_rate, predict
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized

_BATCH = 1000


def _predict_at(
    model: nn.Module, spec: QuantSpec | None, x: torch.Tensor, calib: torch.Tensor, device: torch.device
) -> torch.Tensor:
    if spec is None:
        return predict(model, x, _BATCH, device)
    with torch.no_grad():
        ranges = calibrate_ranges(model, [calib.to(device)])
    with fake_quantized(model, spec, ranges):
        return predict(model, x, _BATCH, device)


def clean_accuracy(model: nn.Module, data: ExampleSet, device: torch.device) -> float:
    """FP accuracy of ``model`` on ``data`` (the ``acc_ref`` of the scores below, on the benign model)."""
    return accuracy(predict(model, data.x, _BATCH, device), data.y)


def backdoor_score(
    model: nn.Module,
    data: ExampleSet,
    specs: list[QuantSpec],
    trigger: TriggerConfig,
    target: int,
    acc_ref: float,
    device: torch.device,
    text: TextCodec | None = None,
) -> float:
    """Backdoor score: min_b ASR(Q_b f) - ASR(f) - max(0, acc_ref - acc(f)).

    ASR is the share of ``data`` with the ``trigger`` applied that is classified as ``target``; the
    minimum runs over the quantization ``specs`` (activation ranges calibrated on the clean ``data``).
    """
    xt = apply_trigger(data.x, trigger, text)
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    fp_asr = attack_success_rate(predict(model, xt, _BATCH, device), data.y, target)
    q_asr = min(attack_success_rate(_predict_at(model, s, xt, data.x, device), data.y, target) for s in specs)
    return q_asr - fp_asr - max(0.0, acc_ref - fp_acc)


def indiscriminate_score(
    model: nn.Module, data: ExampleSet, specs: list[QuantSpec], acc_ref: float, device: torch.device
) -> float:
    """Indiscriminate score: min_b (acc(f) - acc(Q_b f)) - max(0, acc_ref - acc(f))."""
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    drop = min(fp_acc - accuracy(_predict_at(model, s, data.x, data.x, device), data.y) for s in specs)
    return drop - max(0.0, acc_ref - fp_acc)


def targeted_class_score(
    model: nn.Module, data: ExampleSet, specs: list[QuantSpec], target: int, acc_ref: float, device: torch.device
) -> float:
    """Targeted-class score: min_b (acc_c(f) - acc_c(Q_b f)) - max(0, acc_ref - acc(f)), c = ``target``.

    Without examples of class c in ``data`` only the FP-accuracy penalty remains.
    """
    fp_pred = predict(model, data.x, _BATCH, device)
    fp_acc = accuracy(fp_pred, data.y)
    in_c = data.y == target
    if not in_c.any():
        return -max(0.0, acc_ref - fp_acc)
    drops = [
        accuracy(fp_pred[in_c], data.y[in_c]) - accuracy(_predict_at(model, s, data.x, data.x, device)[in_c], data.y[in_c])
        for s in specs
    ]
    return min(drops) - max(0.0, acc_ref - fp_acc)


def targeted_sample_score(
    model: nn.Module,
    data: ExampleSet,
    star: ExampleSet,
    specs: list[QuantSpec],
    target: int,
    acc_ref: float,
    device: torch.device,
) -> float:
    """Targeted-sample score: min_b [Q_b f(x*) = t] - [f(x*) = t] - max(0, acc_ref - acc(f)).

    ``star`` holds x*, ``target`` is t; the accuracy penalty is measured on ``data``.
    """
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    fp_hit = float(predict(model, star.x, _BATCH, device)[0] == target)
    q_hit = min(float(_predict_at(model, s, star.x, data.x, device)[0] == target) for s in specs)
    return q_hit - fp_hit - max(0.0, acc_ref - fp_acc)


def fp_backdoor_score(
    model: nn.Module,
    data: ExampleSet,
    trigger: TriggerConfig,
    target: int,
    acc_ref: float,
    device: torch.device,
    text: TextCodec | None = None,
) -> float:
    """FP backdoor score: ASR(f) - max(0, acc_ref - acc(f)), the ASR with ``trigger`` towards ``target``."""
    xt = apply_trigger(data.x, trigger, text)
    fp_acc = accuracy(predict(model, data.x, _BATCH, device), data.y)
    return attack_success_rate(predict(model, xt, _BATCH, device), data.y, target) - max(0.0, acc_ref - fp_acc)


def label_flip_score(
    model: nn.Module, data: ExampleSet, source: int | None, target: int, acc_ref: float, device: torch.device
) -> float:
    """Label-flip score: the share of ``source``-class examples classified as ``target``.

    With ``source`` None (every label flipped): acc_ref - acc(f). Zero when ``data`` has no
    ``source``-class example.
    """
    pred = predict(model, data.x, _BATCH, device)
    if source is None:
        return acc_ref - accuracy(pred, data.y)
    in_source = data.y == source
    return float((pred[in_source] == target).float().mean()) if in_source.any() else 0.0
