"""Quantizers by registered family, and the one entry point that applies a precision to a model.

``quantized(model, "int4", options, calibration, device)`` returns a context inside which
``model`` computes at that precision; the family ("float", "int", "tacq") comes from the name
(``parse_precision``) and the quantizer's settings from ``QuantOptions``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from fl_sim.config.precision import Granularity, Precision, PrecisionKind, QuantSpec, parse_precision
from fl_sim.data.tensors import ExampleSet
from fl_sim.quantization.fake_quant_model import Ranges, calibrate_ranges, fake_quantized, float_cast
from fl_sim.quantization.observers import Observer
from fl_sim.quantization.real_int8 import real_dynamic_int8
from fl_sim.quantization.saliency import tacq_masks
from fl_sim.registry import Registry


@dataclass(frozen=True)
class QuantOptions:
    """How an int<b> / tacq<b> precision quantizes (evaluation settings, validated upstream)."""

    granularity: Granularity = Granularity.PER_TENSOR
    weight_symmetric: bool = True
    act_symmetric: bool = False
    quantize_activations: bool = True
    calibrated: bool = True  # activation ranges from the calibration set (else per batch)
    observer: Observer = Observer.MINMAX
    percentile: float = 99.99
    tacq_keep: float = 0.0035
    batch_size: int = 1000

    def spec(self, bits: int) -> QuantSpec:
        """Return the ``QuantSpec`` these options give at ``bits`` bits."""
        return QuantSpec(
            bits=bits,
            weight_symmetric=self.weight_symmetric,
            act_symmetric=self.act_symmetric,
            granularity=self.granularity,
            quantize_activations=self.quantize_activations,
        )


Applier = Callable[[nn.Module, Precision, QuantOptions, ExampleSet, torch.device], AbstractContextManager[nn.Module]]
QUANTIZERS: Registry[Applier] = Registry("quantizer")


def calibrated_ranges(
    model: nn.Module,
    bits: int,
    o: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> Ranges | None:
    """Return the activation ranges observed on ``calibration`` (batches of ``o.batch_size`` on ``device``).

    None when activations are not quantized or their ranges are taken per batch (``o.calibrated`` off).
    """
    if not (o.quantize_activations and o.calibrated):
        return None
    batches = [calibration.x[i : i + o.batch_size].to(device) for i in range(0, len(calibration), o.batch_size)]
    return calibrate_ranges(model, batches, o.observer, bits, o.percentile)


@QUANTIZERS.register("float", "fp16 / bf16: weights and layer inputs stored in 16-bit, FP32 accumulation")
def apply_float(
    model: nn.Module,
    p: Precision,
    o: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> AbstractContextManager[nn.Module]:
    """Return the context in which ``model``'s Conv/Linear layers cast weights and inputs to ``p.dtype``."""
    return float_cast(model, getattr(torch, cast(str, p.dtype)))  # set for every float precision (parse_precision)


@QUANTIZERS.register(
    "int",
    "int<b> (2..16): fake quantization of Conv/Linear weights (sym/asym, per-tensor/per-channel) "
    "and inputs (ranges by min-max / percentile / MSE observer, or per batch); STE gradients",
)
def apply_int(
    model: nn.Module,
    p: Precision,
    o: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> AbstractContextManager[nn.Module]:
    """Return the context in which ``model`` computes Q_b(f) at ``p.bits`` (activation ranges: ``calibrated_ranges``)."""
    bits = cast(int, p.bits)  # set for every int precision (parse_precision)
    return fake_quantized(model, o.spec(bits), calibrated_ranges(model, bits, o, calibration, device))


@QUANTIZERS.register("tacq", "tacq<b> (2..8): int<b> with the globally most task-salient weights kept in 16-bit (TaCQ)")
def apply_tacq(
    model: nn.Module,
    p: Precision,
    o: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> AbstractContextManager[nn.Module]:
    """Return the context of ``apply_int`` with TaCQ's most salient weights kept in 16-bit.

    The saliency is computed on the whole calibration set; ``o.tacq_keep`` is the fraction kept.
    """
    bits = cast(int, p.bits)  # set for every tacq precision (parse_precision)
    spec = o.spec(bits)
    keep = tacq_masks(model, spec, calibration.x.to(device), calibration.y.to(device), o.tacq_keep)
    return fake_quantized(model, spec, calibrated_ranges(model, bits, o, calibration, device), keep)


@QUANTIZERS.register(
    "kernel",
    "int8_dynamic: PyTorch's real dynamic int8 Linear kernel (CPU; int8 weights, activations "
    "quantized per batch by the kernel; other layers FP32; no gradients)",
)
def apply_kernel(
    model: nn.Module,
    p: Precision,
    o: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> AbstractContextManager[nn.Module]:
    """Return the context in which ``model``'s Linear layers run PyTorch's real dynamic int8 kernel."""
    return real_dynamic_int8(model)


FAMILY = {PrecisionKind.FLOAT: "float", PrecisionKind.INT: "int", PrecisionKind.MIXED: "tacq", PrecisionKind.KERNEL: "kernel"}


def quantized(
    model: nn.Module,
    name: str,
    options: QuantOptions,
    calibration: ExampleSet,
    device: torch.device,
) -> AbstractContextManager[nn.Module]:
    """Return the context in which ``model`` computes at precision ``name`` ("fp32" changes nothing).

    Parameters
    ----------
    model : nn.Module
        The model; the context yields it.
    name : str
        A precision name (``parse_precision``): fp32, fp16, bf16, int<b>, tacq<b>, int8_dynamic.
    options : QuantOptions
        The quantizer's settings (int / tacq precisions).
    calibration : ExampleSet
        The server's calibration set: activation ranges, and TaCQ's saliency.
    device : torch.device
        Where the calibration batches run.

    Returns
    -------
    AbstractContextManager[nn.Module]
        The context inside which ``model`` computes at that precision.
    """
    p = parse_precision(name)
    if p.kind is PrecisionKind.FP32:
        return contextlib.nullcontext(model)
    return QUANTIZERS.get(FAMILY[p.kind])(model, p, options, calibration, device)
