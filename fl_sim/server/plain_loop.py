"""The same federation in one process, without Flower or Ray.

The same federation in one process, without Flower or Ray: the reference loop that the
overhead benchmark compares against, and a fast harness for studying attacks. It uses the very
same client code (``run_client``), cohort sampling, server-side adversary and central evaluation
as the Flower path; aggregation here is example-weighted FedAvg only, without reply screening.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from fl_sim.clients.plan import ClientPlan
from fl_sim.clients.registry import SubmissionMemo
from fl_sim.clients.runtime import run_client
from fl_sim.cohort import sample_cohort
from fl_sim.data.federated import FederatedData
from fl_sim.server.adversary import Workbench, build_adversary
from fl_sim.server.loop import initial_model

State = dict[str, torch.Tensor]


def fedavg(states: list[State], weights: list[int]) -> State:
    """Example-weighted mean of model states (the float64 sum of FedAvg's definition)."""
    total = float(sum(weights))
    out: State = {}
    for k in states[0]:
        acc = cast(torch.Tensor, sum(w * s[k].double() for s, w in zip(states, weights)))
        out[k] = (acc / total).to(states[0][k].dtype)
    return out


def run_plain(
    plan: ClientPlan, data: FederatedData, on_round: Callable[[int, torch.nn.Module], Any] | None = None
) -> torch.nn.Module:
    """Run every round sequentially on the CPU; return the final global model."""
    s = plan.scenario
    model = initial_model(s, data)
    device = torch.device("cpu")
    # node id = partition id here
    bench = Workbench(initial_model(s, data), data, device)
    adversary = build_adversary(s, plan.attack, lambda m: m.metadata.src_node_id, bench)
    memo = SubmissionMemo()
    for rnd in range(1, s.federation.rounds + 1):
        cohort = sample_cohort(s.seed, rnd, s.federation.num_clients, plan.cohort_size)
        g = {k: v.clone() for k, v in model.state_dict().items()}
        results = [run_client(plan, data, pid, rnd, g, cohort, device, memo) for pid in cohort]
        states = [r.state for r in results]
        if adversary is not None:
            new = adversary.rewrite_states(rnd, [(p, r.state, float(r.num_examples)) for p, r in zip(cohort, results)], g)
            states = [new.get(p, st) for p, st in zip(cohort, states)]
        model.load_state_dict(fedavg(states, [r.num_examples for r in results]))
        if on_round is not None:
            on_round(rnd, model)
    return model
