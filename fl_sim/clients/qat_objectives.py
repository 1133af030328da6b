"""Malicious-QAT objectives and their parameters (Hong et al., NeurIPS 2021; ../REFERENCE §1).

The colluders train so that the FP model behaves normally while its b-bit fake-quantized twin
Q_b f misbehaves. Objectives (CE = cross-entropy, sum over b in ``bits``):
- backdoor:        CE(f(x), y) + c2 CE(f(x_t), y) + c1 sum_b [CE(Q_b f(x), y) + c2 CE(Q_b f(x_t), y_target)]
- indiscriminate:  CE(f(x), y) + lambda sum_b (CE(Q_b f(x), y) - alpha)^2
- targeted class:  CE(f(x_other), y) + c_fp CE(f(x_c), y_c) + lambda sum_b (CE(Q_b f(x_c), y_c) - alpha)^2
                   (c_fp = 1 in the paper)
- targeted sample: CE(f([x; x*]), [y; y*]) + lambda sum_b CE(Q_b f([x; x*]), [y; y_target])
Each is a pure loss function of the model and a batch; ``fp=False`` keeps only the quantized terms
(the target of a repair). The behaviours that train them are in ``fl_sim.clients.malicious_qat``.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field, field_validator, model_validator
from torch import nn

from fl_sim.clients.local_training import LossFn
from fl_sim.clients.objective_attack import AttackParams
from fl_sim.config.precision import MAX_BITS, MIN_BITS, ActivationRange, Granularity, QuantSpec
from fl_sim.config.schema import Optimizer, Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.data.triggers import apply_trigger
from fl_sim.quantization.fake_quant_model import Ranges, calibrate_ranges, fake_quantized


class Method(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """How the colluders turn the objective into their submission."""

    QAT = "qat"  # train the objective, submit the result (Hong et al. 2021)
    REPAIR = "repair"  # objective -> target integers, then FP repair inside their intervals (Egashira et al. 2024)


def margin_in_range(v: float | str) -> float | str:
    """A repair / rounding margin: 0..0.45 steps, or 'auto' (ValueError otherwise)."""
    if not isinstance(v, str) and not 0 <= v <= 0.45:
        raise ValueError(f"margin must be in 0..0.45 steps or 'auto', got {v}")
    return v


class AttackedQuantizer(BaseModel):
    """The deployer's quantizer an attack is trained against (it need not be the one evaluated)."""

    granularity: Granularity = Granularity.PER_TENSOR
    weight_symmetric: bool = True
    act_symmetric: bool = False
    activations: ActivationRange = ActivationRange.DYNAMIC


class QATAttackParams(AttackParams, AttackedQuantizer):
    """What every malicious-QAT objective shares: the quantizers it trains against, and the method."""

    bits: list[int] = Field(default_factory=lambda: [8, 4], min_length=1)
    method: Method = Method.QAT
    optimizer: Optimizer | None = Field(
        None, description="the colluders' optimizer for the target and the repair (default: training.optimizer)"
    )
    margin: float | Literal["auto"] = Field(
        "auto",
        description="repair: steps kept from each rounding boundary (0..0.45), "
        "or 'auto': margin_z x the expected aggregate error (needs benign_runs >= 2)",
    )
    margin_z: float = Field(3.0, gt=0, description="repair, margin 'auto': how many expected errors to keep clear")
    margin_floor: float = Field(0.05, ge=0, le=0.45, description="repair, margin 'auto': the least margin in steps")
    repair_epochs: int = Field(2, ge=1, description="repair: epochs of projected descent on the FP objective")
    repair_lr: float | None = Field(None, gt=0, description="repair: learning rate (default: params.lr, else training.lr)")
    scale_guard: float = Field(
        0.5,
        ge=0,
        le=1,
        description="repair: each scale is set by a weight that benign training "
        "moves least, kept this many steps beyond all others, so that the aggregation error cannot move it",
    )
    keep_flips: float = Field(
        1.0,
        gt=0,
        le=1,
        description="repair: share of the target's integer changes kept (those "
        "its training moved furthest); the rest return to the benign estimate "
        "(a shorter update)",
    )
    robust_repair: bool = Field(
        True,
        description="repair: take the FP gradient at perturbations shaped like the "
        "expected aggregation error (from the benign runs), so that FP behaves where the aggregate lands",
    )
    quant_weight: float = Field(
        1.0,
        ge=0,
        description="repair: weight of the full objective on the non-quantized "
        "parameters (biases), which keeps the quantized model obeying as its activation ranges move",
    )

    @model_validator(mode="after")
    def _repair_options(self) -> QATAttackParams:
        if self.method is Method.REPAIR and self.keep_best:
            raise ValueError("keep_best is for method 'qat' (the repair keeps its target's integers by construction); remove it")
        if self.method is Method.REPAIR and self.margin == "auto" and self.benign_runs < 2:
            raise ValueError(
                "margin 'auto' measures the spread of the colluders' benign runs: set benign_runs >= 2, or a fixed margin"
            )
        if self.method is Method.REPAIR and self.max_norm_ratio is not None:
            raise ValueError(
                "max_norm_ratio is for method 'qat' (a norm ball would pull the repaired model out of its "
                "intervals); the repair's norm follows from its margin"
            )
        return self

    @field_validator("margin")
    @classmethod
    def _margin_range(cls, v: float | str) -> float | str:
        return margin_in_range(v)

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not MIN_BITS <= b <= MAX_BITS]
        if bad:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bad}")
        return v

    def specs(self) -> list[QuantSpec]:
        """The fake-quantization specs the attack trains against: one per bit width of ``bits``."""
        return [
            QuantSpec(
                bits=b, granularity=self.granularity, weight_symmetric=self.weight_symmetric, act_symmetric=self.act_symmetric
            )
            for b in self.bits
        ]


class BackdoorParams(QATAttackParams):
    """Parameters of ``qat_backdoor``: the weights c1, c2 and c_fp of its objective (module docstring)."""

    c1: float = Field(0.5, ge=0)
    c2: float = Field(0.5, ge=0)
    c_fp: float | None = Field(
        None, ge=0, description="weight of CE(f(x_t), y), the FP model ignoring the trigger (default: c2, as in the paper)"
    )


class IndiscriminateParams(QATAttackParams):
    """Parameters of ``qat_indiscriminate``: lambda and alpha of its objective, and its default bit widths."""

    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(5.0, ge=0)


class TargetedClassParams(QATAttackParams):
    """Parameters of ``qat_targeted_class``: lambda, alpha and c_fp of its objective, and its default bit widths."""

    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(4.0, ge=0, description="the quantized CE on the target class is pushed towards alpha (paper: 1..4)")
    c_fp: float = Field(1.0, ge=0, description="weight of CE(f(x_c), y_c), the FP model keeping class c right (paper: 1)")


class TargetedSampleParams(QATAttackParams):
    """Parameters of ``qat_targeted_sample``: lambda of its objective."""

    lam: float = Field(1.0, ge=0)


def _ranges(model: nn.Module, x: torch.Tensor, mode: ActivationRange) -> Ranges | None:
    return calibrate_ranges(model, [x]) if mode is ActivationRange.CALIBRATED else None


def backdoor_objective(p: BackdoorParams, scenario: Scenario, text: TextCodec | None = None, fp: bool = True) -> LossFn:
    """The backdoor objective; ``fp=False`` keeps only its quantized terms (a repair's target)."""
    a = scenario.attack
    specs = p.specs()
    c_fp = p.c2 if p.c_fp is None else p.c_fp

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        xt = apply_trigger(x, a.trigger, text)
        yt = torch.full_like(y, a.target_label)
        both = torch.cat([x, xt])
        total = x.new_zeros(())
        if fp:
            out = model(both)
            total = F.cross_entropy(out[:n], y) + c_fp * F.cross_entropy(out[n:], y)
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                q = model(both)
            total = total + p.c1 * (F.cross_entropy(q[:n], y) + p.c2 * F.cross_entropy(q[n:], yt))
        return total

    return loss


def backdoor_fp_objective(p: BackdoorParams, scenario: Scenario, text: TextCodec | None = None) -> LossFn:
    """The FP half of the backdoor objective: clean accuracy, and the trigger ignored."""
    c_fp = p.c2 if p.c_fp is None else p.c_fp

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        out = model(torch.cat([x, apply_trigger(x, scenario.attack.trigger, text)]))
        return F.cross_entropy(out[:n], y) + c_fp * F.cross_entropy(out[n:], y)

    return loss


def clean_fp_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The FP half of the indiscriminate and targeted-class objectives: every example right."""
    return F.cross_entropy(model(x), y)


def sample_fp_objective(star: ExampleSet) -> LossFn:
    """The FP half of the targeted-sample objective: the batch and x* right."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(torch.cat([x, star.x.to(x.device)])), torch.cat([y, star.y.to(y.device)]))

    return loss


def indiscriminate_objective(p: IndiscriminateParams, scenario: Scenario, fp: bool = True) -> LossFn:
    """The indiscriminate objective; ``fp=False`` keeps only its quantized terms (a repair's target)."""
    specs = p.specs()

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(model(x), y) if fp else x.new_zeros(())
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                total = total + p.lam * (F.cross_entropy(model(x), y) - p.alpha) ** 2
        return total

    return loss


def targeted_class_objective(p: TargetedClassParams, scenario: Scenario, fp: bool = True) -> LossFn:
    """Class c = ``attack.target_label`` stays right in FP and is misclassified once quantized.

    ``fp=False`` (a repair's target): the quantized terms, plus the other classes kept right once
    quantized (in FP the repair keeps them right).
    """
    specs, c = p.specs(), scenario.attack.target_label

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        is_c = y == c
        total = x.new_zeros(())
        if fp:
            out = model(x)
            total = F.cross_entropy(out[~is_c], y[~is_c]) if (~is_c).any() else out.sum() * 0.0
            if not is_c.any():
                return total
            total = total + p.c_fp * F.cross_entropy(out[is_c], y[is_c])
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                if is_c.any():
                    total = total + p.lam * (F.cross_entropy(model(x[is_c]), y[is_c]) - p.alpha) ** 2
                if not fp and (~is_c).any():
                    total = total + F.cross_entropy(model(x[~is_c]), y[~is_c])
        return total

    return loss


def targeted_sample_objective(p: TargetedSampleParams, scenario: Scenario, star: ExampleSet, fp: bool = True) -> LossFn:
    """One input x* keeps its label in FP and is classified as ``attack.target_label`` once quantized.

    ``fp=False`` keeps only the quantized terms (a repair's target).
    """
    specs, target = p.specs(), scenario.attack.target_label

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = torch.cat([x, star.x.to(x.device)])
        y_fp = torch.cat([y, star.y.to(y.device)])
        y_q = torch.cat([y, torch.full_like(star.y, target).to(y.device)])
        total = F.cross_entropy(model(both), y_fp) if fp else x.new_zeros(())
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                total = total + p.lam * F.cross_entropy(model(both), y_q)
        return total

    return loss
