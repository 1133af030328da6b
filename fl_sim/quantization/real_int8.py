"""A real int8 kernel for checking the fake quantizer: PyTorch's dynamic int8 quantization of the
Linear layers (int8 weights, per-tensor symmetric with PyTorch's scale max|w|/127.5; activations
quantized per batch to uint8 by the kernel, range always including zero), and the fake-quantized
model that should compute the same thing.

On x86 (fbgemm) the kernel quantizes activations with ``reduce_range`` (7 bits, 0..127); the fake
twin does the same so that the comparison measures rounding, not a different quantizer.
"""

from __future__ import annotations

import copy
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fl_sim.quantization.fake_quant_model import quantizable_layers, transformed_layers
from fl_sim.quantization.primitives import fake_quantize


def activation_bits() -> int:
    return 7 if torch.backends.quantized.engine in ("fbgemm", "x86") else 8


def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on CPU) whose Linear layers run PyTorch's dynamic int8 kernel."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # the eager-mode API is deprecated in favour of torchao; it is the kernel we check against
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def fake_dynamic_int8(model: nn.Module):
    """A context in which ``model``'s Linear layers fake-quantize as ``dynamic_int8`` does (other layers FP)."""
    linear = {n for n, m in quantizable_layers(model) if isinstance(m, nn.Linear)}
    a_bits = activation_bits()

    def weight_fn(name: str, w: torch.Tensor) -> torch.Tensor:
        if name not in linear:
            return w
        # PyTorch's symmetric qint8 observer: scale = max|w| / 127.5 over the range [-128, 127].
        scale = float(w.detach().abs().amax().clamp_min(1e-12)) / 127.5
        return torch.fake_quantize_per_tensor_affine(w, scale, 0, -128, 127)

    def input_fn(name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in linear:
            return x
        # The kernel's observer always includes zero in the range.
        return fake_quantize(x, a_bits, symmetric=False, lo=x.detach().amin().clamp(max=0), hi=x.detach().amax().clamp(min=0))

    return transformed_layers(model, weight_fn, input_fn)


@contextmanager
def real_dynamic_int8(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every Linear layer of ``model`` runs PyTorch's dynamic int8 kernel (its
    int8 twin made by ``dynamic_int8``; inputs go to the CPU and back). No gradients flow through it."""
    twins = dict(dynamic_int8(model).named_modules())
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]

    def kernel_forward(twin: nn.Module):
        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return twin(x.detach().to("cpu", torch.float32)).to(x.device, x.dtype)

        return forward

    try:
        for name, m in layers:
            m.forward = types.MethodType(kernel_forward(twins[name]), m)
        yield model
    finally:
        for _, m in layers:
            m.__dict__.pop("forward", None)
