"""A real int8 kernel for checking the fake quantizer, and the fake-quantized model that should compute the same thing.

The kernel is PyTorch's dynamic int8 quantization of the Linear layers (int8 weights, per-tensor
symmetric with PyTorch's scale max|w|/127.5; activations quantized per batch to uint8 by the
kernel, range always including zero).

On x86 (fbgemm) the kernel quantizes activations with ``reduce_range`` (7 bits, 0..127); the fake
twin does the same so that the comparison measures rounding, not a different quantizer.
"""

from __future__ import annotations

import copy
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

import torch
from torch import nn

from fl_sim.quantization.fake_quant_model import quantizable_layers, transformed_layers
from fl_sim.quantization.primitives import fake_quantize


def activation_bits() -> int:
    """Return the kernel's activation bits: 7 on x86 (the fbgemm / x86 engines' ``reduce_range``), else 8."""
    return 7 if torch.backends.quantized.engine in ("fbgemm", "x86") else 8


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` (on CPU, in eval mode) whose Linear layers run PyTorch's dynamic int8 kernel."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # the eager-mode API is deprecated in favour of torchao; it is the kernel we check against
        warnings.simplefilter("ignore")
        return cast(
            nn.Module,
            quantize_dynamic(  # type: ignore[no-untyped-call]  # torch leaves quantize_dynamic unannotated
                copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8
            ),
        )


def fake_dynamic_int8(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Return a context in which ``model``'s Linear layers fake-quantize as ``dynamic_int8`` does (other layers FP)."""
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
    """Inside the block every Linear layer of ``model`` runs PyTorch's dynamic int8 kernel.

    Each runs its int8 twin made by ``dynamic_int8``; inputs go to the CPU and back. No gradients
    flow through it.
    """
    twins = dict(dynamic_int8(model).named_modules())
    layers: list[tuple[str, nn.Module]] = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]

    def kernel_forward(twin: nn.Module) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
        def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return cast(torch.Tensor, twin(x.detach().to("cpu", torch.float32)).to(x.device, x.dtype))

        return forward

    try:
        for name, m in layers:
            m.forward = types.MethodType(kernel_forward(twins[name]), m)
        yield model
    finally:
        for _, m in layers:
            m.__dict__.pop("forward", None)
