"""Frozen quantization configs and precision names ("fp32", "int8", "int4", ...)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MIN_BITS, MAX_BITS = 2, 16


class Granularity(str, Enum):
    """Weight-scale granularity: one scale per tensor or one per output channel."""

    PER_TENSOR = "per_tensor"
    PER_CHANNEL = "per_channel"


class ActivationRange(str, Enum):
    """Where activation ranges come from: a calibration set once, or each batch (dynamic)."""

    CALIBRATED = "calibrated"
    DYNAMIC = "dynamic"


@dataclass(frozen=True)
class QuantSpec:
    """How to fake-quantize every Conv/Linear: weights (and inputs) at ``bits``."""

    bits: int
    weight_symmetric: bool = True
    act_symmetric: bool = False
    granularity: Granularity = Granularity.PER_TENSOR
    quantize_activations: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {self.bits!r}")

    @property
    def per_channel(self) -> bool:
        return self.granularity is Granularity.PER_CHANNEL

    @property
    def name(self) -> str:
        return f"int{self.bits}"


FP32 = "fp32"


def parse_precision(name: str) -> int | None:
    """'fp32' -> None; 'int<b>' -> b (2..16). ValueError naming the bad value otherwise."""
    if name == FP32:
        return None
    if name.startswith("int") and name[3:].isdigit():
        bits = int(name[3:])
        if MIN_BITS <= bits <= MAX_BITS:
            return bits
        raise ValueError(f"precision {name!r}: bits must be in {MIN_BITS}..{MAX_BITS}")
    raise ValueError(f"unknown precision {name!r} (use 'fp32' or 'int<bits>', e.g. 'int8')")
