"""One client's work in one round, independent of Flower: pick the behaviour for the client's
role, build its context (seeded RNGs, colluders' pooled data), train, return the new state."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from fl_sim.clients.honest import honest_behaviour_name
from fl_sim.clients.registry import BEHAVIOURS, Behaviour, TrainContext
from fl_sim.cohort import malicious_ids
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.attack_targets import target_sample
from fl_sim.models import build_model
from fl_sim.seeding import torch_generator

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ClientResult:
    state: State
    num_examples: int
    metrics: dict[str, float]
    # Colluders in an attack round: the model they aimed the aggregate at. The simulation harness
    # reads it (integer hit rate) and strips it before the server's strategy sees the reply.
    attack_target: State | None = None


def behaviour_for(scenario: Scenario, partition_id: int) -> Behaviour:
    """The colluders' attack for malicious partition ids, the honest behaviour otherwise."""
    bad = malicious_ids(scenario.seed, scenario.federation.num_clients, scenario.attack.num_malicious)
    if partition_id in bad:
        a = scenario.attack
        return BEHAVIOURS.get(a.behaviour)(a.behaviour_params())
    name = honest_behaviour_name(scenario)
    return BEHAVIOURS.get(name)(BEHAVIOURS.get(name).Params())


@lru_cache(maxsize=2)
def _pooled(data: FederatedData, ids: tuple[int, ...]) -> ExampleSet:
    parts = [data.clients[i] for i in ids]
    return ExampleSet(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def run_client(
    scenario: Scenario, data: FederatedData, partition_id: int, server_round: int,
    global_state: State, cohort: list[int], device: torch.device,
) -> ClientResult:
    """Train client ``partition_id`` from ``global_state`` in ``server_round``."""
    torch.manual_seed(0)  # no hidden global RNG use is expected; this pins any that slips in
    model = build_model(scenario.model.name, data.num_classes, data.input_shape, scenario.model.pretrained).to(device)
    model.load_state_dict(global_state)
    bad = malicious_ids(scenario.seed, scenario.federation.num_clients, scenario.attack.num_malicious)
    colluding = partition_id in bad
    # Independent colluders share only the goal; coordinated ones also pool data and an RNG.
    pooling = colluding and scenario.attack.collusion is not Collusion.INDEPENDENT
    in_cohort = [i for i in cohort if i in bad]
    ctx = TrainContext(
        scenario=scenario, server_round=server_round, partition_id=partition_id,
        data=data.clients[partition_id], cohort_size=len(cohort), device=device,
        generator=torch_generator(scenario.seed, "client", server_round, partition_id),
        colluder_data=_pooled(data, tuple(bad)) if pooling else None,
        colluders_in_cohort=len(in_cohort) if colluding else 0,
        colluder_generator=torch_generator(scenario.seed, "colluders", server_round) if pooling else None,
        target_sample=target_sample(data, scenario.attack) if colluding else None,
        num_classes=data.num_classes,
        text=data.text,
    )
    behaviour = behaviour_for(scenario, partition_id)
    metrics = behaviour.train(model, ctx)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    state, count = behaviour.tamper(state, global_state, len(ctx.data))
    return ClientResult(state, count, metrics, getattr(behaviour, "target", None))
