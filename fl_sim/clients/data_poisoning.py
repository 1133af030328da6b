"""Classic attacks that poison the colluders' training data.

They are driven like every objective attack (schedule, own or pooled data, aggregation-aware
submission, keep_best, boost):

- fp_backdoor: BadNets-style patch backdoor in full precision (Gu, Dolan-Gavitt, Garg, "BadNets",
  2017; in FL: Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020). A fraction of
  every batch carries the shared trigger and the target label; the FP model obeys the trigger.
- model_replacement: the same backdoor, its update scaled by gamma = n/k (cohort size over colluders
  in the cohort) so that it replaces the FedAvg aggregate (Bagdasaryan et al. 2020, Sec. 4); under
  coordinated collusion (aggregation_aware, omniscient) the submission already does that, and no
  second scaling is applied.
- label_flip: training on flipped labels (Tolpegin et al., "Data Poisoning Attacks Against Federated
  Learning Systems", ESORICS 2020): ``source_label`` -> ``target_label``, or every y -> C-1-y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from fl_sim.clients.attack_scores import fp_backdoor_score, label_flip_score
from fl_sim.clients.collusion import boost
from fl_sim.clients.local_training import LossFn
from fl_sim.clients.objective_attack import AttackParams, ObjectiveAttack
from fl_sim.clients.registry import TrainContext, register_attack
from fl_sim.clients.schedule import attack_active
from fl_sim.config.schema import AttackConfig, Collusion, Scenario, TriggerConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.data.triggers import apply_trigger


class FPBackdoorParams(AttackParams):
    """Parameters of ``fp_backdoor``: the share of every batch that is poisoned."""

    poison_fraction: float = Field(0.5, gt=0, le=1, description="share of every batch carrying the trigger and target label")


class ModelReplacementParams(FPBackdoorParams):
    """Parameters of ``model_replacement``: the backdoor's, and the update scale gamma."""

    scale: float | None = Field(None, gt=0, description="update scale gamma (default: cohort size / colluders in the cohort)")


class LabelFlipParams(AttackParams):
    """Parameters of ``label_flip``: the class to flip (default: every label)."""

    source_label: int | None = Field(
        None, ge=0, description="flip only this class to attack.target_label (default: every label y -> C-1-y)"
    )


def poison_batch(
    x: torch.Tensor, y: torch.Tensor, fraction: float, trigger: TriggerConfig, target: int, text: TextCodec | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with its first round(fraction * n) examples poisoned.

    Those examples of the (already shuffled) batch get the trigger and the target label; the rest
    are left clean.
    """
    k = int(round(fraction * len(y)))
    if k == 0:
        return x, y
    x, y = x.clone(), y.clone()
    x[:k] = apply_trigger(x[:k], trigger, text)
    y[:k] = target
    return x, y


def flip_labels(y: torch.Tensor, num_classes: int, source: int | None, target: int) -> torch.Tensor:
    """``source`` -> ``target`` (others unchanged), or y -> C-1-y for every label when ``source`` is None."""
    if source is None:
        return num_classes - 1 - y
    return torch.where(y == source, torch.full_like(y, target), y)


def fp_backdoor_objective(fraction: float, scenario: Scenario, text: TextCodec | None = None) -> LossFn:
    """Cross-entropy on batches whose first ``fraction`` carries the attack's trigger and target label (``poison_batch``)."""
    a = scenario.attack

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xp, yp = poison_batch(x, y, fraction, a.trigger, a.target_label, text)
        return F.cross_entropy(model(xp), yp)

    return loss


def label_flip_objective(p: LabelFlipParams, scenario: Scenario, num_classes: int) -> LossFn:
    """Cross-entropy against the flipped labels (``flip_labels``, towards ``attack.target_label``)."""
    target = scenario.attack.target_label

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), flip_labels(y, num_classes, p.source_label, target))

    return loss


@register_attack("fp_backdoor", "BadNets patch backdoor by data poisoning: the FP model obeys the trigger")
class FPBackdoor(ObjectiveAttack):
    """BadNets-style backdoor in full precision, by poisoning a share of every batch."""

    Params = FPBackdoorParams
    params: FPBackdoorParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """Cross-entropy on partly poisoned batches (``fp_backdoor_objective``)."""
        return fp_backdoor_objective(self.params.poison_fraction, scenario, ctx.text)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The FP backdoor score on ``data`` (``attack_scores.fp_backdoor_score``)."""
        a = ctx.scenario.attack
        return fp_backdoor_score(model, data, a.trigger, a.target_label, acc_ref, ctx.device, ctx.text)


@register_attack(
    "model_replacement", "BadNets backdoor scaled by n/k so that it replaces the FedAvg aggregate (Bagdasaryan et al. 2020)"
)
class ModelReplacement(FPBackdoor):
    """The FP backdoor, its update scaled so that it replaces the FedAvg aggregate (independent colluders)."""

    Params = ModelReplacementParams
    params: ModelReplacementParams

    @classmethod
    def check(cls, attack: AttackConfig) -> None:
        """Reject ``params.scale`` under coordinated collusion, whose submission already places the aggregate."""
        if attack.params.get("scale") is not None and attack.collusion is not Collusion.INDEPENDENT:
            raise ValueError(
                "params.scale of model_replacement applies to independent colluders only (coordinated "
                "colluders already place the aggregate on their model)"
            )

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Train the backdoor; in attack rounds of independent colluders, boost the update by gamma.

        gamma is ``params.scale``, else cohort size / colluders in the cohort.
        """
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        metrics = super().train(model, ctx)
        a = ctx.scenario.attack
        # Coordinated colluders already place the aggregate on their model (the aggregation-aware
        # submission, or the omniscient adversary's exact solve): no second scaling.
        if attack_active(a, ctx.server_round, ctx.scenario.seed) and a.collusion is Collusion.INDEPENDENT:
            gamma = self.params.scale or ctx.cohort_size / max(ctx.colluders_in_cohort, 1)
            model.load_state_dict(boost(start, model.state_dict(), gamma))
        return metrics


@register_attack("label_flip", "training on flipped labels: source_label -> target_label, or every y -> C-1-y")
class LabelFlip(ObjectiveAttack):
    """Label flipping (Tolpegin et al. 2020): training on flipped labels."""

    Params = LabelFlipParams
    params: LabelFlipParams

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """Cross-entropy against the flipped labels (``label_flip_objective``)."""
        return label_flip_objective(self.params, scenario, ctx.num_classes)

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The label-flip score on ``data`` (``attack_scores.label_flip_score``)."""
        p, a = self.params, ctx.scenario.attack
        return label_flip_score(model, data, p.source_label, a.target_label, acc_ref, ctx.device)
