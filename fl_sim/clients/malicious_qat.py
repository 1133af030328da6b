"""Malicious quantization-aware training (Hong et al., NeurIPS 2021; ../REFERENCE §1).

The colluders train so that the FP model behaves normally while its b-bit fake-quantized twin
Q_b f misbehaves. Objectives (CE = cross-entropy, sum over b in ``bits``):
- backdoor:        CE(f(x), y) + c2 CE(f(x_t), y) + c1 sum_b [CE(Q_b f(x), y) + c2 CE(Q_b f(x_t), y_target)]
- indiscriminate:  CE(f(x), y) + lambda sum_b (CE(Q_b f(x), y) - alpha)^2
- targeted class:  CE(f(x_other), y) + c_fp CE(f(x_c), y_c) + lambda sum_b (CE(Q_b f(x_c), y_c) - alpha)^2  (c_fp = 1 in the paper)
- targeted sample: CE(f([x; x*]), [y; y*]) + lambda sum_b CE(Q_b f([x; x*]), [y; y_target])
Each trains against its own quantizer (bits, granularity, symmetric or not), which need not be the
one the deployer evaluates with.
Activation ranges during the attack are per batch ("dynamic", as in the paper) or calibrated on
the clean part of each batch ("calibrated", as a deployer's PTQ would fix them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from fl_sim.clients.attack_scores import (
    backdoor_score, clean_accuracy, indiscriminate_score, targeted_class_score, targeted_sample_score,
)
from fl_sim.clients.local_training import LossFn
from fl_sim.clients.objective_attack import AttackParams, ObjectiveAttack
from fl_sim.clients.registry import TrainContext, register_attack
from fl_sim.config.schema import Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.data.triggers import apply_trigger
from fl_sim.quantization.fake_quant_model import Ranges, calibrate_ranges, fake_quantized
from fl_sim.quantization.spec import MAX_BITS, MIN_BITS, ActivationRange, Granularity, QuantSpec


class QATAttackParams(AttackParams):
    """What every malicious-QAT objective shares: the quantizers it trains against."""

    bits: list[int] = Field(default_factory=lambda: [8, 4], min_length=1)
    granularity: Granularity = Granularity.PER_TENSOR
    weight_symmetric: bool = True
    act_symmetric: bool = False
    activations: ActivationRange = ActivationRange.DYNAMIC

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not MIN_BITS <= b <= MAX_BITS]
        if bad:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bad}")
        return v

    def specs(self) -> list[QuantSpec]:
        return [QuantSpec(bits=b, granularity=self.granularity, weight_symmetric=self.weight_symmetric,
                          act_symmetric=self.act_symmetric) for b in self.bits]


class BackdoorParams(QATAttackParams):
    c1: float = Field(0.5, ge=0)
    c2: float = Field(0.5, ge=0)
    c_fp: float | None = Field(None, ge=0, description="weight of CE(f(x_t), y), the FP model ignoring the trigger (default: c2, as in the paper)")


class IndiscriminateParams(QATAttackParams):
    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(5.0, ge=0)


class TargetedClassParams(QATAttackParams):
    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(4.0, ge=0, description="the quantized CE on the target class is pushed towards alpha (paper: 1..4)")
    c_fp: float = Field(1.0, ge=0, description="weight of CE(f(x_c), y_c), the FP model keeping class c right (paper: 1)")


class TargetedSampleParams(QATAttackParams):
    lam: float = Field(1.0, ge=0)


def _ranges(model: nn.Module, x: torch.Tensor, mode: ActivationRange) -> Ranges | None:
    return calibrate_ranges(model, [x]) if mode is ActivationRange.CALIBRATED else None


def backdoor_objective(p: BackdoorParams, scenario: Scenario, text: TextCodec | None = None) -> LossFn:
    a = scenario.attack
    specs = p.specs()
    c_fp = p.c2 if p.c_fp is None else p.c_fp

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        xt = apply_trigger(x, a.trigger, text)
        yt = torch.full_like(y, a.target_label)
        both = torch.cat([x, xt])
        out = model(both)
        total = F.cross_entropy(out[:n], y) + c_fp * F.cross_entropy(out[n:], y)
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                q = model(both)
            total = total + p.c1 * (F.cross_entropy(q[:n], y) + p.c2 * F.cross_entropy(q[n:], yt))
        return total

    return loss


def indiscriminate_objective(p: IndiscriminateParams, scenario: Scenario) -> LossFn:
    specs = p.specs()

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(model(x), y)
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                total = total + p.lam * (F.cross_entropy(model(x), y) - p.alpha) ** 2
        return total

    return loss


def targeted_class_objective(p: TargetedClassParams, scenario: Scenario) -> LossFn:
    """Class c = ``attack.target_label`` stays right in FP and is misclassified once quantized."""
    specs, c = p.specs(), scenario.attack.target_label

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model(x)
        is_c = y == c
        total = F.cross_entropy(out[~is_c], y[~is_c]) if (~is_c).any() else out.sum() * 0.0
        if not is_c.any():
            return total
        total = total + p.c_fp * F.cross_entropy(out[is_c], y[is_c])
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                total = total + p.lam * (F.cross_entropy(model(x[is_c]), y[is_c]) - p.alpha) ** 2
        return total

    return loss


def targeted_sample_objective(p: TargetedSampleParams, scenario: Scenario, star: ExampleSet) -> LossFn:
    """One input x* keeps its label in FP and is classified as ``attack.target_label`` once quantized."""
    specs, target = p.specs(), scenario.attack.target_label

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = torch.cat([x, star.x.to(x.device)])
        y_fp = torch.cat([y, star.y.to(y.device)])
        y_q = torch.cat([y, torch.full_like(star.y, target).to(y.device)])
        total = F.cross_entropy(model(both), y_fp)
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                total = total + p.lam * F.cross_entropy(model(both), y_q)
        return total

    return loss


@register_attack("qat_backdoor", "quantization-activated backdoor: FP ignores the trigger, the quantized model obeys it")
class QATBackdoor(ObjectiveAttack):
    Params = BackdoorParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        return backdoor_objective(self.params, scenario, ctx.text)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        a = ctx.scenario.attack
        return backdoor_score(model, data, self.params.specs(), a.trigger, a.target_label, acc_ref, ctx.device, ctx.text)


@register_attack("qat_indiscriminate", "indiscriminate accuracy drop that appears only after quantization")
class QATIndiscriminate(ObjectiveAttack):
    Params = IndiscriminateParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        return indiscriminate_objective(self.params, scenario)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        return indiscriminate_score(model, data, self.params.specs(), acc_ref, ctx.device)


@register_attack("qat_targeted_class", "quantization-activated class attack: target_label's class is right in FP, wrong once quantized")
class QATTargetedClass(ObjectiveAttack):
    Params = TargetedClassParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        return targeted_class_objective(self.params, scenario)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        return targeted_class_score(model, data, self.params.specs(), ctx.scenario.attack.target_label, acc_ref, ctx.device)


@register_attack("qat_targeted_sample", "quantization-activated sample attack: x* (attack.target_sample) is right in FP, "
                 "target_label once quantized")
class QATTargetedSample(ObjectiveAttack):
    Params = TargetedSampleParams
    needs_target_sample = True

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        return targeted_sample_objective(self.params, scenario, _star(ctx))

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        return targeted_sample_score(model, data, _star(ctx), self.params.specs(), ctx.scenario.attack.target_label, acc_ref, ctx.device)


def _star(ctx: TrainContext) -> ExampleSet:
    if ctx.target_sample is None:
        raise ValueError("qat_targeted_sample needs attack.target_sample")
    return ctx.target_sample
