"""Frozen quantization configs and precision names ("fp32", "int8", "int4", ...): pure data, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MIN_BITS, MAX_BITS = 2, 16


class Granularity(str, Enum):
    """Weight-scale granularity: one scale per tensor or one per output channel."""

    PER_TENSOR = "per_tensor"
    PER_CHANNEL = "per_channel"


class Observer(str, Enum):
    """How a calibrated activation range is read off a sample (fl_sim/quantization/observers.py)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    MSE = "mse"


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
        """Refuse ``bits`` outside MIN_BITS..MAX_BITS (ValueError)."""
        if not isinstance(self.bits, int) or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {self.bits!r}")

    @property
    def per_channel(self) -> bool:
        """Whether weights get one scale per output channel."""
        return self.granularity is Granularity.PER_CHANNEL

    @property
    def name(self) -> str:
        """The precision's name, ``int<bits>``."""
        return f"int{self.bits}"


FP32 = "fp32"
KERNEL_INT8 = "int8_dynamic"  # PyTorch's real dynamic int8 Linear kernel (CPU)
FLOAT_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
MIXED_PREFIX, MIXED_MAX_BITS = "tacq", 8


class PrecisionKind(str, Enum):
    """What a precision name denotes: FP32, 16-bit floats, fake int<b>, TaCQ's mixed int<b>, or a real kernel."""

    FP32 = "fp32"
    FLOAT = "float"  # fp16 / bf16 storage of weights and layer inputs
    INT = "int"  # b-bit fake quantization (int<b>)
    MIXED = "mixed"  # b-bit with the most task-salient weights kept in 16-bit (tacq<b>)
    KERNEL = "kernel"  # a real integer kernel (int8_dynamic), not fake quantization


@dataclass(frozen=True)
class Precision:
    """A parsed precision name: its kind and, where they apply, its bits and float dtype."""

    name: str
    kind: PrecisionKind
    bits: int | None = None
    dtype: str | None = None


def parse_precision(name: str) -> Precision:
    """Parse 'fp32' | 'fp16' | 'bf16' | 'int<b>' (b in 2..16) | 'tacq<b>' (b in 2..8) | 'int8_dynamic'.

    ValueError naming the bad value otherwise.
    """
    if name == FP32:
        return Precision(name, PrecisionKind.FP32)
    if name == KERNEL_INT8:
        return Precision(name, PrecisionKind.KERNEL, bits=8)
    if name in FLOAT_DTYPES:
        return Precision(name, PrecisionKind.FLOAT, bits=16, dtype=FLOAT_DTYPES[name])
    for prefix, kind, top in (("int", PrecisionKind.INT, MAX_BITS), (MIXED_PREFIX, PrecisionKind.MIXED, MIXED_MAX_BITS)):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            bits = int(name[len(prefix) :])
            if MIN_BITS <= bits <= top:
                return Precision(name, kind, bits=bits)
            raise ValueError(f"precision {name!r}: bits must be in {MIN_BITS}..{top}")
    raise ValueError(
        f"unknown precision {name!r} (use fp32, fp16, bf16, int<bits> e.g. int8, tacq<bits> e.g. tacq3, or {KERNEL_INT8})"
    )
