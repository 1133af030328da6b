"""Registered quantizer schemes: how an ``int<b>`` precision is applied to a model."""

from __future__ import annotations

from collections.abc import Callable

from fl_sim.quantization.spec import Granularity, QuantSpec
from fl_sim.registry import Registry

QUANTIZERS: Registry[Callable[[int], QuantSpec]] = Registry("quantizer")


@QUANTIZERS.register("fake_per_tensor", "weights symmetric per-tensor, activations asymmetric per-tensor (evaluation.granularity: per_tensor)")
def per_tensor(bits: int) -> QuantSpec:
    return QuantSpec(bits=bits, granularity=Granularity.PER_TENSOR)


@QUANTIZERS.register("fake_per_channel", "weights symmetric per output channel, activations asymmetric per-tensor (evaluation.granularity: per_channel)")
def per_channel(bits: int) -> QuantSpec:
    return QuantSpec(bits=bits, granularity=Granularity.PER_CHANNEL)
