"""Malicious quantization-aware training (Hong et al., NeurIPS 2021; ../REFERENCE §1).

The colluders train so that the FP model behaves normally while its b-bit fake-quantized twin
Q_b f misbehaves; the objectives and their parameters are in ``fl_sim.clients.qat_objectives``.
Each trains against its own quantizer (bits, granularity, symmetric or not), which need not be the
one the deployer evaluates with.

``params.method``: ``qat`` trains the objective above and submits the result (Hong et al.);
``repair`` trains it only to make a malicious target, freezes that target's integers, and repairs
the FP model inside the intervals that keep them (fl_sim.clients.repair): the quantized aggregate
then equals the target exactly, up to the margin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from fl_sim.clients.attack_scores import backdoor_score, indiscriminate_score, targeted_class_score, targeted_sample_score
from fl_sim.clients.local_training import LossFn, steps_per_epoch, train_steps
from fl_sim.clients.objective_attack import ObjectiveAttack, State
from fl_sim.clients.qat_objectives import (
    BackdoorParams,
    IndiscriminateParams,
    Method,
    QATAttackParams,
    TargetedClassParams,
    TargetedSampleParams,
    backdoor_fp_objective,
    backdoor_objective,
    clean_fp_objective,
    indiscriminate_objective,
    sample_fp_objective,
    targeted_class_objective,
    targeted_sample_objective,
)
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
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.tensors import ExampleSet
from fl_sim.quantization.intervals import WeightQuantizer, pin_scale, range_box


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
        train_steps(
            model,
            data,
            quant_loss,
            cfg,
            steps,
            gen,
            ctx.device,
            lr=p.lr,
            after_step=lambda _: project_(model, grid),
            desc="attack repair",
        )
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
