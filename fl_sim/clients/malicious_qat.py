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
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from fl_sim.clients.attack_scores import backdoor_score, clean_accuracy, indiscriminate_score
from fl_sim.clients.collusion import aggregation_aware_submission, boost, project_into_ball, state_distance
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
    benign_runs: int = Field(1, ge=1, description="aggregation-aware collusion: average this many honest runs (fresh "
                             "shuffles of the colluders' data) as the estimate of the benign mean")
    max_norm_ratio: float | None = Field(None, gt=1, description="stealth: keep the submitted update's norm within this x "
                                         "the colluders' own benign update norm (projected training; None: unbounded)")
    keep_best: bool = Field(False, description="hold out select_fraction of the colluders' data, score the model on it "
                            "after every malicious epoch (fl_sim.clients.attack_scores) and submit the best epoch")
    select_fraction: float = Field(0.2, gt=0, lt=1, description="share of the colluders' data held out for keep_best")

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


class IndiscriminateParams(QATAttackParams):
    bits: list[int] = Field(default_factory=lambda: [8, 7, 6, 5], min_length=1)
    lam: float = Field(1.0, ge=0)
    alpha: float = Field(5.0, ge=0)


def _ranges(model: nn.Module, x: torch.Tensor, mode: ActivationRange) -> Ranges | None:
    return calibrate_ranges(model, [x]) if mode is ActivationRange.CALIBRATED else None


def backdoor_objective(p: BackdoorParams, scenario: Scenario) -> LossFn:
    a = scenario.attack
    specs = p.specs()
    c_fp = p.c2 if p.c_fp is None else p.c_fp

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        xt = apply_patch(x, a.trigger.size, a.trigger.margin, a.trigger.value)
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


State = dict[str, torch.Tensor]

# The last colluder submission computed in this process (key, state, metrics): the other colluders
# of the round find it here instead of recomputing the identical result.
_LAST: dict = {}


def _copy(model: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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

    def objective(self, scenario: Scenario) -> LossFn:
        raise NotImplementedError

    def score(self, model: nn.Module, data: ImageSet, scenario: Scenario, acc_ref: float, device: torch.device) -> float:
        """The attacker's own measure of success on held-out data (higher is better)."""
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
            _LAST.update(key=key, state=_copy(model), metrics=dict(metrics))
        return metrics

    def _attack(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        s, p = ctx.scenario, self.params
        data = ctx.colluder_data if ctx.colluder_data is not None else ctx.data
        gen = ctx.colluder_generator if ctx.colluder_generator is not None else ctx.generator
        epochs = p.epochs or s.training.epochs
        mal_steps = epochs * steps_per_epoch(len(ctx.data), s.training.batch_size)
        start = _copy(model)
        benign_loss = None
        aware = s.attack.collusion is Collusion.AGGREGATION_AWARE
        if aware or p.max_norm_ratio is not None:
            benign_loss = self._benign_estimate(model, data, ctx, gen, start)
        estimate = _copy(model)
        # The submitted update is amplified n/k times around the estimate when aggregation-aware.
        amplification = ctx.cohort_size / max(ctx.colluders_in_cohort, 1) if aware else 1.0
        project = None
        if p.max_norm_ratio is not None:
            radius = (p.max_norm_ratio - 1.0) * state_distance(start, estimate) / amplification
            project = lambda: project_into_ball(model, estimate, radius)  # noqa: E731
        if not aware:
            model.load_state_dict(start)
        attack_loss, submission = self._malicious_training(model, data, ctx, gen, mal_steps, project)
        if aware:
            submission = aggregation_aware_submission(estimate, submission, ctx.cohort_size, max(ctx.colluders_in_cohort, 1))
        if s.attack.boost != 1.0:
            submission = boost(start, submission, s.attack.boost)
        model.load_state_dict(submission)
        # Report only what an honest client reports (a plausible loss), never the attack's own.
        return {"train_loss": benign_loss if benign_loss is not None else attack_loss}

    def _benign_estimate(self, model: nn.Module, data: ImageSet, ctx: TrainContext, gen: torch.Generator, start: State) -> float:
        """Leave in ``model`` the mean of ``benign_runs`` honest runs from ``start``; return their mean loss."""
        s, runs = ctx.scenario, self.params.benign_runs
        honest_loss = Honest(BEHAVIOURS.get("honest").Params()).loss_fn(s)
        losses, total = [], None
        for _ in range(runs):
            model.load_state_dict(start)
            losses.append(train_steps(model, data, honest_loss, s.training, honest_steps(ctx), gen, ctx.device))
            st = model.state_dict()
            total = {k: v.double().clone() for k, v in st.items()} if total is None else {k: total[k] + st[k].double() for k in st}
        model.load_state_dict({k: (v / runs).to(start[k].dtype) for k, v in total.items()})
        return sum(losses) / runs

    def _malicious_training(
        self, model: nn.Module, data: ImageSet, ctx: TrainContext, gen: torch.Generator, steps: int,
        project: Callable[[], None] | None = None,
    ) -> tuple[float, State]:
        """Train the objective for ``steps`` (calling ``project`` after each step); with
        ``keep_best``, on all but a held-out share of ``data``, returning the epoch whose held-out
        score was highest."""
        s, p = ctx.scenario, self.params
        loss_fn = self.objective(s)
        every = steps_per_epoch(len(ctx.data), s.training.batch_size)
        train, held = _split(data, p.select_fraction, gen) if p.keep_best else (data, None)
        acc_ref = clean_accuracy(model, held, ctx.device) if held is not None else 0.0
        best: dict = {"score": float("-inf"), "state": None}

        def keep() -> None:
            score = self.score(model, held, s, acc_ref, ctx.device)
            if score > best["score"]:
                best.update(score=score, state=_copy(model))

        def after_step(done: int) -> None:
            if project is not None:
                project()
            if held is not None and (done % every == 0 or done == steps):
                keep()

        loss = train_steps(model, train, loss_fn, s.training, steps, gen, ctx.device, lr=p.lr, after_step=after_step)
        return loss, best["state"] if held is not None else _copy(model)


def _split(data: ImageSet, fraction: float, gen: torch.Generator) -> tuple[ImageSet, ImageSet]:
    perm = torch.randperm(len(data), generator=gen)
    cut = max(1, int(round(len(data) * fraction)))
    held, kept = perm[:cut], perm[cut:]
    return ImageSet(data.x[kept], data.y[kept]), ImageSet(data.x[held], data.y[held])


@register_attack("qat_backdoor", "quantization-activated backdoor: FP ignores the trigger, the quantized model obeys it")
class QATBackdoor(MaliciousQAT):
    Params = BackdoorParams

    def objective(self, scenario: Scenario) -> LossFn:
        return backdoor_objective(self.params, scenario)

    def score(self, model: nn.Module, data: ImageSet, scenario: Scenario, acc_ref: float, device: torch.device) -> float:
        a = scenario.attack
        return backdoor_score(model, data, self.params.specs(), a.trigger, a.target_label, acc_ref, device)


@register_attack("qat_indiscriminate", "indiscriminate accuracy drop that appears only after quantization")
class QATIndiscriminate(MaliciousQAT):
    Params = IndiscriminateParams

    def objective(self, scenario: Scenario) -> LossFn:
        return indiscriminate_objective(self.params, scenario)

    def score(self, model: nn.Module, data: ImageSet, scenario: Scenario, acc_ref: float, device: torch.device) -> float:
        return indiscriminate_score(model, data, self.params.specs(), acc_ref, device)
