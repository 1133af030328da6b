"""One client's work in one round, independent of Flower.

Pick the behaviour for the client's role, build its context (seeded RNGs, colluders' pooled data),
train, return the new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from fl_sim.clients.plan import ClientPlan
from fl_sim.clients.registry import SubmissionMemo, TrainContext
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.attack_targets import target_sample
from fl_sim.data.federated import FederatedData
from fl_sim.data.tensors import ExampleSet
from fl_sim.models import build_model
from fl_sim.seeding import derive_seed, torch_generator

# The reply record that carries the colluders' aim (harness-only: stripped before the server sees it).
ATTACK_TARGET = "fl-sim-attack-target"

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ClientResult:
    """What one client returns from a round: its state, example count and metrics."""

    state: State
    num_examples: int
    metrics: dict[str, float]
    # Colluders in an attack round: the model they aimed the aggregate at. The simulation harness
    # reads it (integer hit rate) and strips it before the server's strategy sees the reply.
    attack_target: State | None = None


@lru_cache(maxsize=2)  # a pure function of the federation's (cached) data: built once per process
def pooled(data: FederatedData, ids: tuple[int, ...]) -> ExampleSet:
    """The colluders' pooled training data."""
    parts = [data.clients[i] for i in ids]
    return ExampleSet(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def context_for(
    scenario: Scenario,
    bad: tuple[int, ...],
    data: FederatedData,
    partition_id: int,
    server_round: int,
    cohort: list[int],
    device: torch.device,
    memo: SubmissionMemo | None = None,
) -> TrainContext:
    """What client ``partition_id`` knows when it trains in ``server_round`` (seeded RNGs, colluders' pooled data)."""
    colluding = partition_id in bad
    # Independent colluders share only the goal; coordinated ones also pool data and an RNG.
    pooling = colluding and scenario.attack.collusion is not Collusion.INDEPENDENT
    return TrainContext(
        scenario=scenario,
        server_round=server_round,
        partition_id=partition_id,
        data=data.clients[partition_id],
        cohort_size=len(cohort),
        device=device,
        generator=torch_generator(scenario.seed, "client", server_round, partition_id),
        colluder_data=pooled(data, bad) if pooling else None,
        colluders_in_cohort=len([i for i in cohort if i in bad]) if colluding else 0,
        colluder_generator=torch_generator(scenario.seed, "colluders", server_round) if pooling else None,
        target_sample=target_sample(data, scenario.attack) if colluding else None,
        num_classes=data.num_classes,
        text=data.text,
        memo=memo if pooling else None,
    )


def run_client(
    plan: ClientPlan,
    data: FederatedData,
    partition_id: int,
    server_round: int,
    global_state: State,
    cohort: list[int],
    device: torch.device,
    memo: SubmissionMemo | None = None,
) -> ClientResult:
    """Train client ``partition_id`` from ``global_state`` in ``server_round``.

    ``memo`` (one per client process) lets coordinated colluders of a round share their identical
    submission instead of recomputing it. Code that draws from torch's global RNG (dropout) runs
    under a seed derived from the scenario, round and client; the global RNG is restored afterwards.
    """
    scenario = plan.scenario
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(scenario.seed, "client-global", server_round, partition_id))
        model = build_model(scenario.model.name, data.num_classes, data.input_shape, scenario.model.pretrained).to(device)
        model.load_state_dict(global_state)
        ctx = context_for(scenario, plan.attack.malicious, data, partition_id, server_round, cohort, device, memo)
        behaviour = plan.behaviour_for(partition_id)
        metrics = behaviour.train(model, ctx)
        state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        state, count = behaviour.tamper(state, global_state, len(ctx.data))
        return ClientResult(state, count, metrics, getattr(behaviour, "target", None))
