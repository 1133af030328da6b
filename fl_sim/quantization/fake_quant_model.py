"""Run a whole model under fake quantization: Q_b(f) of ../REFERENCE §1.

Every Conv/Linear computes op(FQ(input), FQ(W)) + bias in full precision; everything else
(activations functions, pooling, the logits) stays FP. The same forward serves post-training
evaluation and QAT (gradients flow through the straight-through estimator).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from fl_sim.config.precision import QuantSpec
from fl_sim.quantization.observers import Observer, observe
from fl_sim.quantization.primitives import fake_quantize

Ranges = dict[str, tuple[torch.Tensor, torch.Tensor]]
_QUANTIZABLE = (nn.Conv2d, nn.Linear)


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return the (name, module) pairs that fake quantization rewrites (every Conv2d and Linear)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _QUANTIZABLE)]


Transform = Callable[[str, torch.Tensor], torch.Tensor]


def _make_forward(module: nn.Module, name: str, weight_fn: Transform, input_fn: Transform) -> types.MethodType:
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x, w = input_fn(name, x), weight_fn(name, cast(torch.Tensor, self.weight))
        if isinstance(self, nn.Conv2d):
            return cast(torch.Tensor, self._conv_forward(x, w, self.bias))
        return F.linear(x, w, cast("torch.Tensor | None", self.bias))

    return types.MethodType(forward, module)


@contextmanager
def transformed_layers(model: nn.Module, weight_fn: Transform, input_fn: Transform) -> Iterator[nn.Module]:
    """Inside the block every Conv/Linear computes op(input_fn(x), weight_fn(W)) + bias."""
    layers = quantizable_layers(model)
    try:
        for name, m in layers:
            m.forward = _make_forward(m, name, weight_fn, input_fn)
        yield model
    finally:
        for _, m in layers:
            m.__dict__.pop("forward", None)


def layer_io(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of ``layer`` (a module of ``model``) when ``model`` runs on ``x``.

    In batches of ``batch``, in eval mode, without gradients; the model's training mode is restored.
    """
    seen: dict[str, list[torch.Tensor]] = {"in": [], "out": []}

    def hook(_m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["in"].append(args[0].detach())
        seen["out"].append(out.detach())

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], batch):
                model(x[i : i + batch])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(seen["in"]), torch.cat(seen["out"])


def fake_quantized(
    model: nn.Module,
    spec: QuantSpec,
    ranges: Ranges | None = None,
    keep: dict[str, torch.Tensor] | None = None,
) -> AbstractContextManager[nn.Module]:
    """Inside the block, ``model`` computes Q_b(f).

    ``ranges`` fixes calibrated activation ranges (per layer name); without it the ranges are taken
    from each batch (dynamic). ``keep`` (per layer name, a boolean mask shaped like the weight)
    leaves those weights in 16-bit instead (mixed precision, ../REFERENCE §4).

    Parameters
    ----------
    model : nn.Module
        The model whose Conv/Linear layers fake-quantize inside the block.
    spec : QuantSpec
        Bit width, symmetric or not (weights, activations), per tensor or per channel (weights),
        and whether activations quantize at all.
    ranges : Ranges or None
        Calibrated (lo, hi) input range per layer name (see ``calibrate_ranges``); None: per batch.
    keep : dict[str, torch.Tensor] or None
        Per layer name, a boolean mask of the weights kept in 16-bit (fp16-rounded) instead.

    Returns
    -------
    AbstractContextManager[nn.Module]
        The context (it yields ``model``). Without autograd a quantized weight is cached per layer
        until the weight changes in place.
    """
    cache: dict[str, tuple[int, torch.Tensor]] = {}

    def weight_fn(name: str, w: torch.Tensor) -> torch.Tensor:
        # Without autograd (evaluation, attacks' queries) a weight quantizes the same way on every
        # forward: reuse it until the weight changes in place (its version counter moves).
        hit = None if torch.is_grad_enabled() else cache.get(name)
        if hit is not None and hit[0] == w._version:
            return hit[1]
        q = fake_quantize(w, spec.bits, spec.weight_symmetric, per_channel=spec.per_channel)
        if keep is not None and name in keep:
            q = torch.where(keep[name], w.to(torch.float16).to(w.dtype), q)
        if not torch.is_grad_enabled():
            cache[name] = (w._version, q)
        return q

    return transformed_layers(model, weight_fn, input_quantizer(spec, ranges))


def input_quantizer(spec: QuantSpec, ranges: Ranges | None = None) -> Transform:
    """(layer name, input) -> the input as a layer quantized under ``spec`` sees it.

    Calibrated ``ranges`` per layer name, or per batch without them; the identity when ``spec``
    leaves activations in FP.
    """

    def input_fn(name: str, x: torch.Tensor) -> torch.Tensor:
        if not spec.quantize_activations:
            return x
        lo, hi = ranges[name] if ranges is not None else (None, None)
        return fake_quantize(x, spec.bits, spec.act_symmetric, lo=lo, hi=hi)

    return input_fn


def float_cast(model: nn.Module, dtype: torch.dtype) -> AbstractContextManager[nn.Module]:
    """Inside the block every Conv/Linear stores weights and inputs in ``dtype`` (fp16 / bf16).

    The computation itself accumulates in FP32 (round-to-nearest-even of the cast).
    """

    def cast(_name: str, t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype).to(t.dtype)

    return transformed_layers(model, cast, cast)


_SAMPLE_CAP = 1 << 18  # values kept per layer and batch for the percentile / MSE observers


def _strided_sample(x: torch.Tensor) -> torch.Tensor:
    flat = x.detach().reshape(-1)
    step = max(1, flat.numel() // _SAMPLE_CAP)
    return flat[::step]


@torch.no_grad()
def calibrate_ranges(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    observer: Observer = Observer.MINMAX,
    bits: int = 8,
    percentile: float = 99.99,
) -> Ranges:
    """Return the input range of each quantizable layer over all ``batches``, observed in the FP model.

    As PyTorch's static-PTQ observers do: exact min/max, or ``observer`` applied to a deterministic
    strided sample of the inputs (percentile / MSE at ``bits``). The model runs in eval mode
    without gradients, and its training mode is restored afterwards; ValueError if nothing was observed (no batch).
    """
    stats: Ranges = {}
    samples: dict[str, list[torch.Tensor]] = {}
    hooks: list[RemovableHandle] = []

    def hook_for(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            if observer is not Observer.MINMAX:
                samples.setdefault(name, []).append(_strided_sample(x))
                return
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
    for name, parts in samples.items():
        stats[name] = observe(torch.cat(parts), observer, bits, percentile)
    if not stats:
        raise ValueError("calibration saw no batch: the calibration set is empty")
    return stats
