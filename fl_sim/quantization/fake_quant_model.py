"""Run a whole model under fake quantization: Q_b(f) of ../REFERENCE §1.

Every Conv/Linear computes op(FQ(input), FQ(W)) + bias in full precision; everything else
(activations functions, pooling, the logits) stays FP. The same forward serves post-training
evaluation and QAT (gradients flow through the straight-through estimator).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.quantization.primitives import fake_quantize
from fl_sim.quantization.spec import QuantSpec

Ranges = dict[str, tuple[torch.Tensor, torch.Tensor]]
_QUANTIZABLE = (nn.Conv2d, nn.Linear)


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs that fake quantization rewrites."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _QUANTIZABLE)]


def _make_forward(module: nn.Module, spec: QuantSpec, rng: tuple[torch.Tensor, torch.Tensor] | None):
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if spec.quantize_activations:
            lo, hi = rng if rng is not None else (None, None)
            x = fake_quantize(x, spec.bits, spec.act_symmetric, lo=lo, hi=hi)
        w = fake_quantize(self.weight, spec.bits, spec.weight_symmetric, per_channel=spec.per_channel)
        if isinstance(self, nn.Conv2d):
            return self._conv_forward(x, w, self.bias)
        return F.linear(x, w, self.bias)

    return types.MethodType(forward, module)


@contextmanager
def fake_quantized(model: nn.Module, spec: QuantSpec, ranges: Ranges | None = None) -> Iterator[nn.Module]:
    """Inside the block, ``model`` computes Q_b(f). ``ranges`` fixes calibrated activation ranges
    (per layer name); without it the ranges are taken from each batch (dynamic)."""
    layers = quantizable_layers(model)
    try:
        for name, m in layers:
            m.forward = _make_forward(m, spec, None if ranges is None else ranges[name])
        yield model
    finally:
        for _, m in layers:
            m.__dict__.pop("forward", None)


@torch.no_grad()
def calibrate_ranges(model: nn.Module, batches: Iterable[torch.Tensor]) -> Ranges:
    """Min/max observer: the range of each quantizable layer's input over all ``batches``,
    observed in the FP model (as PyTorch's static-PTQ observers do)."""
    stats: Ranges = {}
    hooks = []

    def hook_for(name: str):
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            lo, hi = x.amin(), x.amax()
            if name in stats:
                lo, hi = torch.minimum(stats[name][0], lo), torch.maximum(stats[name][1], hi)
            stats[name] = (lo, hi)

        return hook

    for name, m in quantizable_layers(model):
        hooks.append(m.register_forward_pre_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not stats:
        raise ValueError("calibration saw no batch: the calibration set is empty")
    return stats
