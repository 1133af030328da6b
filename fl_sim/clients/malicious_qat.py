"""Malicious quantization-aware training (Hong et al., NeurIPS 2021; ../REFERENCE §1).

The colluders train so that the FP model behaves normally while its b-bit fake-quantized twin
Q_b f misbehaves. Objectives (CE = cross-entropy, sum over b in ``bits``):
- backdoor:        CE(f(x), y) + c2 CE(f(x_t), y) + c1 sum_b [CE(Q_b f(x), y) + c2 CE(Q_b f(x_t), y_target)]
- indiscriminate:  CE(f(x), y) + lambda sum_b (CE(Q_b f(x), y) - alpha)^2
- targeted class:  CE(f(x_other), y) + c_fp CE(f(x_c), y_c) + lambda sum_b (CE(Q_b f(x_c), y_c) - alpha)^2
                   (c_fp = 1 in the paper)
- targeted sample: CE(f([x; x*]), [y; y*]) + lambda sum_b CE(Q_b f([x; x*]), [y; y_target])
Each trains against its own quantizer (bits, granularity, symmetric or not), which need not be the
one the deployer evaluates with.
Activation ranges during the attack are per batch ("dynamic", as in the paper) or calibrated on
the clean part of each batch ("calibrated", as a deployer's PTQ would fix them).

``params.method``: ``qat`` trains the objective above and submits the result (Hong et al.);
``repair`` trains it only to make a malicious target, freezes that target's integers, and repairs
the FP model inside the intervals that keep them (fl_sim.clients.repair): the quantized aggregate
then equals the target exactly, up to the margin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from fl_sim.clients.attack_scores import backdoor_score, indiscriminate_score, targeted_class_score, targeted_sample_score
from fl_sim.clients.local_training import LossFn, steps_per_epoch, train_steps
from fl_sim.clients.objective_attack import AttackParams, ObjectiveAttack, State
from fl_sim.clients.registry import TrainContext, register_attack
from fl_sim.clients.repair import (
    aggregation_jitter,
    auto_margins,
    nearest_in_boxes,
    project_,
    quantized_weight_names,
    repair,
    sparsify_flips,
    weight_boxes,
    weight_quantizer,
)
from fl_sim.config.precision import MAX_BITS, MIN_BITS, ActivationRange, Granularity, QuantSpec
from fl_sim.config.schema import Collusion, Optimizer, Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.data.triggers import apply_trigger
from fl_sim.quantization.fake_quant_model import Ranges, calibrate_ranges, fake_quantized
from fl_sim.quantization.intervals import WeightQuantizer, pin_scale, range_box


class Method(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """How the colluders turn the objective into their submission."""

    QAT = "qat"  # train the objective, submit the result (Hong et al. 2021)
    REPAIR = "repair"  # objective -> target integers, then FP repair inside their intervals (Egashira et al. 2024)


class QATAttackParams(AttackParams):
    """What every malicious-QAT objective shares: the quantizers it trains against, and the method."""

    bits: list[int] = Field(default_factory=lambda: [8, 4], min_length=1)
    granularity: Granularity = Granularity.PER_TENSOR
    weight_symmetric: bool = True
    act_symmetric: bool = False
    activations: ActivationRange = ActivationRange.DYNAMIC
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
        if not isinstance(v, str) and not 0 <= v <= 0.45:
            raise ValueError(f"margin must be in 0..0.45 steps or 'auto', got {v}")
        return v

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


class QATAttack(ObjectiveAttack):
    """A malicious-QAT attack: ``objective`` (FP and quantized terms) and ``fp_objective``.

    ``fp_objective`` is what the FP model must do; ``method`` decides how they become the submission.
    """

    params: QATAttackParams

    def fp_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The objective's FP terms only: what the repair descends."""
        raise NotImplementedError

    def quant_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The objective's quantized terms only: what the repair's target is trained on."""
        raise NotImplementedError

    def needs_estimate(self) -> bool:
        """Whether the benign estimate is needed whatever the collusion: with method ``repair`` (it is the anchor)."""
        return self.params.method is Method.REPAIR

    def shard_estimate(self) -> bool:
        """Whether the benign runs train on disjoint shards: with method ``repair`` (their spread sets margin and jitter)."""
        return self.params.method is Method.REPAIR

    def _malicious_training(
        self,
        model: nn.Module,
        data: ExampleSet,
        ctx: TrainContext,
        gen: torch.Generator,
        steps: int,
        project: Callable[[], None] | None = None,
        anchor: State | None = None,
        runs: list[State] | None = None,
        start: State | None = None,
    ) -> tuple[float, State]:
        p = self.params
        cfg = (
            ctx.scenario.training if p.optimizer is None else ctx.scenario.training.model_copy(update={"optimizer": p.optimizer})
        )
        if p.method is Method.QAT:
            return super()._malicious_training(model, data, ctx, gen, steps, project, anchor, runs, start)
        anchor = anchor if anchor is not None else {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(anchor)
        names = quantized_weight_names(model)
        quantizers = [weight_quantizer(spec) for spec in p.specs()]
        # The target keeps the anchor's grid (its extremes pinned): only the weights the objective
        # needs change integer, instead of every weight re-rounding on a new scale.
        spread = _movement(runs or [], start, names)
        anchor = {k: pin_scale(v, quantizers[0], p.scale_guard, spread.get(k)) if k in names else v for k, v in anchor.items()}
        model.load_state_dict(anchor)
        grid = {k: range_box(anchor[k], quantizers[0], p.scale_guard) for k in names}
        quant_loss = self.quant_objective(ctx.scenario, ctx)
        train_steps(model, data, quant_loss, cfg, steps, gen, ctx.device, lr=p.lr, after_step=lambda _: project_(model, grid))
        target = {k: v.detach().clone() for k, v in model.state_dict().items()}
        target = sparsify_flips(target, anchor, names, quantizers[0], p.keep_flips)
        boxes = weight_boxes(target, names, quantizers, self._margins(ctx, names, quantizers, runs or [], start), p.scale_guard)
        model.load_state_dict(nearest_in_boxes(anchor, boxes, target))
        r_steps = p.repair_epochs * steps_per_epoch(len(data), ctx.scenario.training.batch_size)
        exact = ctx.scenario.attack.collusion is Collusion.OMNISCIENT
        jitter = (
            []
            if exact or not p.robust_repair
            else aggregation_jitter(runs or [], ctx.cohort_size, max(ctx.colluders_in_cohort, 1))
        )
        loss = repair(
            model,
            data,
            self.fp_objective(ctx.scenario, ctx),
            quant_loss,
            boxes,
            cfg,
            r_steps,
            gen,
            ctx.device,
            p.repair_lr or p.lr or cfg.lr,
            p.quant_weight,
            jitter=jitter,
        )
        return loss, {k: v.detach().clone() for k, v in model.state_dict().items()}

    def _margins(
        self, ctx: TrainContext, names: list[str], quantizers: list[WeightQuantizer], runs: list[State], start: State | None
    ) -> Mapping[str, float | torch.Tensor]:
        """Per quantized tensor (or weight), the margin in steps (fixed, or from the benign runs)."""
        p = self.params
        if p.margin != "auto":
            return {k: float(p.margin) for k in names}
        if ctx.scenario.attack.collusion is Collusion.OMNISCIENT:  # the adversary solves the aggregate exactly
            return {k: p.margin_floor for k in names}
        finest = max(quantizers, key=lambda q: q.bits)  # several bit widths: the narrowest intervals decide
        return auto_margins(
            runs, names, finest, ctx.cohort_size, max(ctx.colluders_in_cohort, 1), p.margin_z, p.margin_floor, start
        )


@register_attack("qat_backdoor", "quantization-activated backdoor: FP ignores the trigger, the quantized model obeys it")
class QATBackdoor(QATAttack):
    """Quantization-activated backdoor (Hong et al. 2021): the FP model ignores the trigger, the quantized one obeys it."""

    Params = BackdoorParams
    params: BackdoorParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The backdoor objective (``backdoor_objective``)."""
        return backdoor_objective(self.params, scenario, ctx.text)

    def fp_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """Clean accuracy with the trigger ignored (``backdoor_fp_objective``)."""
        return backdoor_fp_objective(self.params, scenario, ctx.text)

    def quant_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The backdoor objective's quantized terms."""
        return backdoor_objective(self.params, scenario, ctx.text, fp=False)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The backdoor score on ``data`` at the attacked precisions (``attack_scores.backdoor_score``)."""
        a = ctx.scenario.attack
        return backdoor_score(model, data, self.params.specs(), a.trigger, a.target_label, acc_ref, ctx.device, ctx.text)


@register_attack("qat_indiscriminate", "indiscriminate accuracy drop that appears only after quantization")
class QATIndiscriminate(QATAttack):
    """Quantization-activated accuracy drop (Hong et al. 2021): the FP model stays accurate, the quantized one does not."""

    Params = IndiscriminateParams
    params: IndiscriminateParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The indiscriminate objective (``indiscriminate_objective``)."""
        return indiscriminate_objective(self.params, scenario)

    def fp_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """Every example right (``clean_fp_objective``)."""
        return clean_fp_objective

    def quant_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The indiscriminate objective's quantized terms."""
        return indiscriminate_objective(self.params, scenario, fp=False)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The indiscriminate score on ``data`` at the attacked precisions (``attack_scores.indiscriminate_score``)."""
        return indiscriminate_score(model, data, self.params.specs(), acc_ref, ctx.device)


@register_attack(
    "qat_targeted_class", "quantization-activated class attack: target_label's class is right in FP, wrong once quantized"
)
class QATTargetedClass(QATAttack):
    """Quantization-activated class attack (Hong et al. 2021): class ``target_label`` is right in FP, wrong once quantized."""

    Params = TargetedClassParams
    params: TargetedClassParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The targeted-class objective (``targeted_class_objective``)."""
        return targeted_class_objective(self.params, scenario)

    def fp_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """Every example right (``clean_fp_objective``)."""
        return clean_fp_objective

    def quant_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The targeted-class objective's quantized terms, plus the other classes kept right once quantized."""
        return targeted_class_objective(self.params, scenario, fp=False)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The targeted-class score on ``data`` at the attacked precisions (``attack_scores.targeted_class_score``)."""
        return targeted_class_score(model, data, self.params.specs(), ctx.scenario.attack.target_label, acc_ref, ctx.device)


@register_attack(
    "qat_targeted_sample",
    "quantization-activated sample attack: x* (attack.target_sample) is right in FP, target_label once quantized",
)
class QATTargetedSample(QATAttack):
    """Quantization-activated sample attack (Hong et al. 2021): x* is right in FP, ``target_label`` once quantized."""

    Params = TargetedSampleParams
    params: TargetedSampleParams
    needs_target_sample = True

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The targeted-sample objective on x* = ``ctx.target_sample`` (``targeted_sample_objective``)."""
        return targeted_sample_objective(self.params, scenario, _star(ctx))

    def fp_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The batch and x* right (``sample_fp_objective``)."""
        return sample_fp_objective(_star(ctx))

    def quant_objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The targeted-sample objective's quantized terms."""
        return targeted_sample_objective(self.params, scenario, _star(ctx), fp=False)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The targeted-sample score of x* at the attacked precisions (``attack_scores.targeted_sample_score``)."""
        return targeted_sample_score(
            model, data, _star(ctx), self.params.specs(), ctx.scenario.attack.target_label, acc_ref, ctx.device
        )


def _movement(runs: list[State], start: State | None, names: list[str]) -> dict[str, torch.Tensor]:
    """Per weight, the mean |update| of the benign runs: how far honest training moves it.

    It is zero for weights no gradient reaches. The scale is pinned on weights that move least.
    """
    if not runs or start is None:
        return {}
    return {k: torch.stack([(r[k] - start[k]).abs() for r in runs]).mean(0) for k in names}


def _star(ctx: TrainContext) -> ExampleSet:
    if ctx.target_sample is None:
        raise ValueError("qat_targeted_sample needs attack.target_sample")
    return ctx.target_sample
