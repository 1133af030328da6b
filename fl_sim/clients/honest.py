"""Honest behaviours: plain local training, and quantization-aware training (QAT)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from fl_sim.clients.local_training import LossFn, cross_entropy_loss, steps_per_epoch, train_steps
from fl_sim.clients.registry import BEHAVIOURS, Behaviour, TrainContext
from fl_sim.config.precision import QuantSpec
from fl_sim.config.schema import Scenario
from fl_sim.quantization.fake_quant_model import fake_quantized


def honest_steps(ctx: TrainContext) -> int:
    """Local epochs over the client's own data, in minibatch steps."""
    t = ctx.scenario.training
    return t.epochs * steps_per_epoch(len(ctx.data), t.batch_size)


def qat_loss(spec: QuantSpec) -> LossFn:
    """Cross-entropy through the fake-quantized forward (dynamic ranges, STE gradients)."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with fake_quantized(model, spec):
            return cross_entropy_loss(model, x, y)

    return loss


@BEHAVIOURS.register("honest", "local training on the client's own data")
class Honest(Behaviour):
    """Plain local training: cross-entropy on the client's own data for ``training.epochs`` epochs."""

    def loss_fn(self, scenario: Scenario) -> LossFn:
        """The loss the client trains on (cross-entropy)."""
        return cross_entropy_loss

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Train ``model`` in place on the client's own data; report the mean ``train_loss``."""
        loss_fn = self.loss_fn(ctx.scenario)
        loss = train_steps(model, ctx.data, loss_fn, ctx.scenario.training, honest_steps(ctx), ctx.generator, ctx.device)
        return {"train_loss": loss}


@BEHAVIOURS.register("honest_qat", "quantization-aware local training at training.qat.bits (fake quant + STE)")
class HonestQAT(Honest):
    """Quantization-aware local training: the honest loop on the fake-quantized forward."""

    def loss_fn(self, scenario: Scenario) -> LossFn:
        """Cross-entropy through the model fake-quantized at ``training.qat.bits``."""
        return qat_loss(QuantSpec(bits=scenario.training.qat.bits))


def honest_behaviour_name(scenario: Scenario) -> str:
    """The registered name of the honest behaviour of ``scenario``: ``honest_qat`` when QAT is enabled, else ``honest``."""
    return "honest_qat" if scenario.training.qat.enabled else "honest"


def honest_for(scenario: Scenario) -> Honest:
    """What an honest client of ``scenario`` runs (plain training, or QAT when enabled).

    Colluders train exactly this way outside their attack rounds and to estimate the benign update.
    """
    cls = cast(type[Honest], BEHAVIOURS.get(honest_behaviour_name(scenario)))
    return cls(cls.Params())
