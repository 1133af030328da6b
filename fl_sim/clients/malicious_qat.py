"""Malicious quantization-aware training (Hong et al., NeurIPS 2021; ../REFERENCE §1).

The colluders train so that the FP model behaves normally while its b-bit fake-quantized twin
Q_b f misbehaves. Objectives (CE = cross-entropy, sum over b in ``bits``):
- backdoor:        CE(f(x), y) + c2 CE(f(x_t), y) + c1 sum_b [CE(Q_b f(x), y) + c2 CE(Q_b f(x_t), y_target)]
- indiscriminate:  CE(f(x), y) + lambda sum_b (CE(Q_b f(x), y) - alpha)^2
Activation ranges during the attack are per batch ("dynamic", as in the paper) or calibrated on
the clean part of each batch ("calibrated", as a deployer's PTQ would fix them).
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from torch.func import functional_call

from fl_sim.clients.collusion import aggregation_aware_submission, boost
from fl_sim.clients.honest import Honest, honest_steps
from fl_sim.clients.local_training import LossFn, steps_per_epoch, train_steps
from fl_sim.clients.registry import BEHAVIOURS, Behaviour, TrainContext, register_attack
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.tensors import ImageSet
from fl_sim.data.triggers import apply_patch
from fl_sim.quantization.fake_quant_model import Ranges, calibrate_ranges, fake_quantized
from fl_sim.quantization.spec import MAX_BITS, MIN_BITS, ActivationRange, Granularity, QuantSpec


class QATAttackParams(BaseModel):
    """What every malicious-QAT objective shares: the quantizers it trains against."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    bits: list[int] = Field(default_factory=lambda: [8, 4], min_length=1)
    granularity: Granularity = Granularity.PER_TENSOR
    activations: ActivationRange = ActivationRange.DYNAMIC
    epochs: int | None = Field(None, ge=1, description="malicious local epochs (default: training.epochs)")
    lr: float | None = Field(None, gt=0, description="malicious learning rate (default: training.lr)")
    benign_estimate: Literal["pooled", "per_colluder"] = Field(
        "pooled", description="aggregation-aware collusion: estimate the benign mean by one honest run on the pooled "
        "data ('pooled'), or by averaging one honest run per colluder's own share of the pooled data ('per_colluder', "
        "closer to the mean of many benign clients)")

    @field_validator("bits")
    @classmethod
    def _bits_in_range(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not MIN_BITS <= b <= MAX_BITS]
        if bad:
            raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bad}")
        return v

    def specs(self) -> list[QuantSpec]:
        return [QuantSpec(bits=b, granularity=self.granularity) for b in self.bits]


class BackdoorParams(QATAttackParams):
    c1: float = Field(0.5, ge=0)
    c2: float = Field(0.5, ge=0)
    c_fp: float | None = Field(None, ge=0, description="weight of CE(f(x_t), y), the FP model ignoring the trigger (default: c2, as in the paper)")
    weight_noise: float = Field(0.0, ge=0, description="train at weights perturbed by Gaussian noise of this x each tensor's std, so "
                                "the backdoor survives the error of the colluders' benign estimate (0: off)")


class IndiscriminateParams(QATAttackParams):
    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(5.0, ge=0)


def _ranges(model: nn.Module, x: torch.Tensor, mode: ActivationRange) -> Ranges | None:
    return calibrate_ranges(model, [x]) if mode is ActivationRange.CALIBRATED else None


def perturbed_forward(model: nn.Module, scale: float, generator: torch.Generator | None):
    """``model``'s forward at weights + N(0, (scale * std(W))^2) per tensor (plain forward if scale is 0)."""
    if scale <= 0:
        return model
    params = {}
    for name, w in model.named_parameters():
        noise = torch.randn(w.shape, generator=generator, device="cpu").to(w.device)
        params[name] = w + scale * float(w.detach().std()) * noise if w.dim() > 1 else w
    return lambda inp: functional_call(model, params, (inp,))


def backdoor_objective(p: BackdoorParams, scenario: Scenario, generator: torch.Generator | None = None) -> LossFn:
    a = scenario.attack
    specs = p.specs()
    c_fp = p.c2 if p.c_fp is None else p.c_fp

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        xt = apply_patch(x, a.trigger.size, a.trigger.margin, a.trigger.value)
        yt = torch.full_like(y, a.target_label)
        both = torch.cat([x, xt])
        forward = perturbed_forward(model, p.weight_noise, generator)
        out = forward(both)
        total = F.cross_entropy(out[:n], y) + c_fp * F.cross_entropy(out[n:], y)
        ranges = _ranges(model, x, p.activations)
        for spec in specs:
            with fake_quantized(model, spec, ranges):
                q = forward(both)
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


_LAST: dict = {}


def _per_colluder_estimate(model, data, start, loss_fn, ctx: TrainContext, gen) -> float:
    """Average of honest runs, one per colluder's share of the pooled data, each from ``start``
    (as many benign-like trajectories as there are colluders); leaves the mean state in ``model``."""
    k = max(ctx.colluders_in_cohort, 1)
    n = len(data) // k
    states, losses = [], []
    for i in range(k):
        model.load_state_dict(start)
        part = ImageSet(data.x[i * n:(i + 1) * n], data.y[i * n:(i + 1) * n])
        losses.append(train_steps(model, part, loss_fn, ctx.scenario.training, honest_steps(ctx), gen, ctx.device))
        states.append({k_: v.detach().clone() for k_, v in model.state_dict().items()})
    model.load_state_dict({k_: sum(st[k_] for st in states) / len(states) for k_ in states[0]})
    return sum(losses) / len(losses)


def _colluder_key(model: nn.Module, ctx: TrainContext, p: BaseModel) -> tuple:
    """What a colluder's submission depends on: scenario, params, round, cohort, start state."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return (ctx.scenario.model_dump_json(), p.model_dump_json(), ctx.server_round, ctx.cohort_size,
            ctx.colluders_in_cohort, len(ctx.data), len(ctx.colluder_data), h.hexdigest())


class MaliciousQAT(Behaviour):
    """Shared driver: stay honest outside the attack rounds; otherwise train the objective on the
    colluders' pooled data (identical for every colluder), optionally aggregation-aware, boosted."""

    def objective(self, scenario: Scenario, generator: torch.Generator) -> LossFn:
        raise NotImplementedError

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        s, p = ctx.scenario, self.params
        if not s.attack.active(ctx.server_round):
            return Honest(BEHAVIOURS.get("honest").Params()).train(model, ctx)
        # Colluders compute identical submissions (same pooled data, same shared RNG, same start):
        # compute it once per process and round, reuse it for the other colluders.
        key = _colluder_key(model, ctx, p) if ctx.colluder_data is not None else None
        if key is not None and _LAST.get("key") == key:
            model.load_state_dict(_LAST["state"])
            return dict(_LAST["metrics"])
        metrics = self._attack(model, ctx)
        if key is not None:
            _LAST.clear()
            _LAST.update(key=key, state={k: v.detach().clone() for k, v in model.state_dict().items()}, metrics=dict(metrics))
        return metrics

    def _attack(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        s, p = ctx.scenario, self.params
        data = ctx.colluder_data if ctx.colluder_data is not None else ctx.data
        gen = ctx.colluder_generator if ctx.colluder_generator is not None else ctx.generator
        epochs = p.epochs or s.training.epochs
        mal_steps = epochs * steps_per_epoch(len(ctx.data), s.training.batch_size)
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        benign_loss = None
        if s.attack.collusion is Collusion.AGGREGATION_AWARE:
            honest_loss = Honest(BEHAVIOURS.get("honest").Params()).loss_fn(s)
            if p.benign_estimate == "per_colluder" and ctx.colluder_data is not None:
                benign_loss = _per_colluder_estimate(model, data, start, honest_loss, ctx, gen)
            else:
                benign_loss = train_steps(model, data, honest_loss, s.training, honest_steps(ctx), gen, ctx.device)
        estimate = {k: v.detach().clone() for k, v in model.state_dict().items()}
        attack_loss = train_steps(model, data, self.objective(s, gen), s.training, mal_steps, gen, ctx.device, lr=p.lr)
        submission = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if s.attack.collusion is Collusion.AGGREGATION_AWARE:
            submission = aggregation_aware_submission(estimate, submission, ctx.cohort_size, max(ctx.colluders_in_cohort, 1))
        if s.attack.boost != 1.0:
            submission = boost(start, submission, s.attack.boost)
        model.load_state_dict(submission)
        # Report only what an honest client reports (a plausible loss), never the attack's own.
        return {"train_loss": benign_loss if benign_loss is not None else attack_loss}


@register_attack("qat_backdoor", "quantization-activated backdoor: FP ignores the trigger, the quantized model obeys it")
class QATBackdoor(MaliciousQAT):
    Params = BackdoorParams

    def objective(self, scenario: Scenario, generator: torch.Generator) -> LossFn:
        return backdoor_objective(self.params, scenario, generator)


@register_attack("qat_indiscriminate", "indiscriminate accuracy drop that appears only after quantization")
class QATIndiscriminate(MaliciousQAT):
    Params = IndiscriminateParams

    def objective(self, scenario: Scenario, generator: torch.Generator) -> LossFn:
        return indiscriminate_objective(self.params, scenario)
