"""The driver every objective-trained attack shares (malicious QAT, FP data poisoning).

Honest outside the attack rounds; otherwise the attack objective trained on the client's own data
(independent colluders) or the colluders' pooled data (coordinated), aggregation-aware around an
estimate of the benign mean, optionally norm-bounded (projected training), with attacker-side
epoch selection (keep_best), and boosted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from fl_sim.clients.attack_scores import clean_accuracy
from fl_sim.clients.collusion import aggregation_aware_submission, boost, project_into_ball, state_distance
from fl_sim.clients.honest import honest_for, honest_steps
from fl_sim.clients.local_training import LossFn, steps_per_epoch, train_steps
from fl_sim.clients.registry import Behaviour, TrainContext
from fl_sim.clients.schedule import attack_active
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.tensors import ExampleSet


class AttackParams(BaseModel):
    """What every objective-trained attack shares: how long, how fast, and how the colluders submit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int | None = Field(None, ge=1, description="malicious local epochs (default: training.epochs)")
    lr: float | None = Field(None, gt=0, description="malicious learning rate (default: training.lr)")
    benign_runs: int = Field(
        1,
        ge=1,
        description="aggregation-aware collusion: average this many honest runs (fresh "
        "shuffles of the colluders' data) as the estimate of the benign mean",
    )
    max_norm_ratio: float | None = Field(
        None,
        gt=1,
        description="stealth: keep the submitted update's norm within this x "
        "the colluders' own benign update norm (projected training; None: unbounded)",
    )
    keep_best: bool = Field(
        False,
        description="hold out select_fraction of the colluders' data, score the model on it "
        "after every malicious epoch (fl_sim.clients.attack_scores) and submit the best epoch",
    )
    select_fraction: float = Field(0.2, gt=0, lt=1, description="share of the colluders' data held out for keep_best")


State = dict[str, torch.Tensor]


def _copy(model: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _colluder_key(model: nn.Module, ctx: TrainContext, p: BaseModel) -> tuple[object, ...]:
    """What a colluder's submission depends on: scenario, params, round, cohort, start state."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    pooled = 0 if ctx.colluder_data is None else len(ctx.colluder_data)
    return (
        ctx.scenario.model_dump_json(),
        p.model_dump_json(),
        ctx.server_round,
        ctx.cohort_size,
        ctx.colluders_in_cohort,
        len(ctx.data),
        pooled,
        h.hexdigest(),
    )


class ObjectiveAttack(Behaviour):
    """Shared driver: stay honest outside the attack rounds, train the objective in them.

    In an attack round the objective trains on the client's own data (independent colluders) or the
    colluders' pooled data (coordinated: one identical submission), aggregation-aware or left for
    the omniscient adversary to steer; boosted. After an attack round ``target`` holds the model the
    colluders aimed the aggregate at.
    """

    params: AttackParams

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self.target: State | None = None

    def objective(self, scenario: Scenario, ctx: TrainContext) -> LossFn:
        """The attack's training loss (subclasses define it)."""
        raise NotImplementedError

    def score(self, model: nn.Module, data: ExampleSet, ctx: TrainContext, acc_ref: float) -> float:
        """The attacker's own measure of success on held-out data (higher is better)."""
        raise NotImplementedError

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Train honestly outside the attack rounds; in them, leave the attack's submission in ``model``.

        Coordinated colluders of one process compute the submission once per round and reuse it
        (``ctx.memo``).
        """
        s, p = ctx.scenario, self.params
        if not attack_active(s.attack, ctx.server_round, s.seed):
            return honest_for(s).train(model, ctx)
        # Colluders compute identical submissions (same pooled data, same shared RNG, same start):
        # compute it once per process and round, reuse it for the other colluders.
        memo = ctx.memo if ctx.colluder_data is not None else None
        key = _colluder_key(model, ctx, p) if memo is not None else None
        found = memo.lookup(key) if memo is not None and key is not None else None
        if found is not None:
            state, metrics, self.target = found
            model.load_state_dict(state)
            return metrics
        metrics = self._attack(model, ctx)
        if memo is not None and key is not None:
            memo.store(key, _copy(model), metrics, self.target)
        return metrics

    def _attack(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        s, p = ctx.scenario, self.params
        data = ctx.colluder_data if ctx.colluder_data is not None else ctx.data
        gen = ctx.colluder_generator if ctx.colluder_generator is not None else ctx.generator
        epochs = p.epochs or s.training.epochs
        mal_steps = epochs * steps_per_epoch(len(ctx.data), s.training.batch_size)
        start = _copy(model)
        runs: list[State]
        benign_loss, runs = None, []
        aware = s.attack.collusion is Collusion.AGGREGATION_AWARE
        if aware or p.max_norm_ratio is not None or self.needs_estimate():
            benign_loss = self._benign_estimate(model, data, ctx, gen, start, runs_out=runs)
        estimate = _copy(model)
        # The submitted update is amplified n/k times around the estimate when aggregation-aware.
        amplification = ctx.cohort_size / max(ctx.colluders_in_cohort, 1) if aware else 1.0
        project = None
        if p.max_norm_ratio is not None:
            radius = (p.max_norm_ratio - 1.0) * state_distance(start, estimate) / amplification
            project = lambda: project_into_ball(model, estimate, radius)  # noqa: E731
        if not aware:
            model.load_state_dict(start)
        attack_loss, submission = self._malicious_training(
            model, data, ctx, gen, mal_steps, project, anchor=estimate, runs=runs, start=start
        )
        self.target = {k: v.detach().to("cpu").clone() for k, v in submission.items()}
        if aware:
            submission = aggregation_aware_submission(estimate, submission, ctx.cohort_size, max(ctx.colluders_in_cohort, 1))
        if s.attack.boost != 1.0:
            submission = boost(start, submission, s.attack.boost)
        model.load_state_dict(submission)
        # With a benign estimate, report its (plausible) honest loss; otherwise the attack's own loss.
        return {"train_loss": benign_loss if benign_loss is not None else attack_loss}

    def needs_estimate(self) -> bool:
        """Whether the attack needs the benign estimate even without aggregation-aware collusion."""
        return False

    def shard_estimate(self) -> bool:
        """Whether the benign runs train on disjoint shards of the colluders' data.

        Each shard is the size of one client's data, so that the runs' spread mimics the honest
        clients' (else: fresh shuffles of all of it).
        """
        return False

    def _benign_estimate(
        self,
        model: nn.Module,
        data: ExampleSet,
        ctx: TrainContext,
        gen: torch.Generator,
        start: State,
        runs_out: list[State] | None = None,
    ) -> float:
        """Leave in ``model`` the mean of ``benign_runs`` honest runs from ``start``; return their mean loss.

        Each run's state is appended to ``runs_out`` if given.
        """
        s, runs = ctx.scenario, self.params.benign_runs
        honest_loss = honest_for(s).loss_fn(s)
        parts = _shards(data, runs, len(ctx.data), gen) if self.shard_estimate() else [data] * runs
        losses: list[float]
        total: State | None
        losses, total = [], None
        for part in parts:
            model.load_state_dict(start)
            losses.append(train_steps(model, part, honest_loss, s.training, honest_steps(ctx), gen, ctx.device))
            st = model.state_dict()
            if runs_out is not None:
                runs_out.append(_copy(model))
            total = (
                {k: v.double().clone() for k, v in st.items()} if total is None else {k: total[k] + st[k].double() for k in st}
            )
        model.load_state_dict({k: (v / runs).to(start[k].dtype) for k, v in cast(State, total).items()})
        return sum(losses) / runs

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
        """Train the objective for ``steps``, calling ``project`` after each step; return (mean loss, submission).

        With ``keep_best``, train on all but a held-out share of ``data`` and submit the epoch whose
        held-out score was highest. ``anchor``, ``runs`` and ``start`` (the benign estimate, the
        benign runs, the global model) are unused here; subclasses may need them.
        """
        s, p = ctx.scenario, self.params
        loss_fn = self.objective(s, ctx)
        every = steps_per_epoch(len(ctx.data), s.training.batch_size)
        train, held = _split(data, p.select_fraction, gen) if p.keep_best else (data, None)
        acc_ref = clean_accuracy(model, held, ctx.device) if held is not None else 0.0
        best: dict[str, Any] = {"score": float("-inf"), "state": None}

        def keep() -> None:
            score = self.score(model, cast(ExampleSet, held), ctx, acc_ref)
            if score > best["score"]:
                best.update(score=score, state=_copy(model))

        def after_step(done: int) -> None:
            if project is not None:
                project()
            if held is not None and (done % every == 0 or done == steps):
                keep()

        loss = train_steps(
            model, train, loss_fn, s.training, steps, gen, ctx.device, lr=p.lr, after_step=after_step, desc="attack training"
        )
        return loss, best["state"] if held is not None else _copy(model)


def _shards(data: ExampleSet, count: int, size: int, gen: torch.Generator) -> list[ExampleSet]:
    """``count`` disjoint random shards of ``data``, each of ``size`` examples or as many as fit."""
    per = max(1, min(size, len(data) // count))
    perm = torch.randperm(len(data), generator=gen)
    return [data.subset(perm[i * per : (i + 1) * per]) for i in range(count)]


def _split(data: ExampleSet, fraction: float, gen: torch.Generator) -> tuple[ExampleSet, ExampleSet]:
    """(training part, held-out part): at least one example in each."""
    if len(data) < 2:
        raise ValueError(f"keep_best needs at least 2 examples to hold some out, the colluders have {len(data)}")
    perm = torch.randperm(len(data), generator=gen)
    cut = min(len(data) - 1, max(1, int(round(len(data) * fraction))))
    held, kept = perm[:cut], perm[cut:]
    return ExampleSet(data.x[kept], data.y[kept]), ExampleSet(data.x[held], data.y[held])
