"""Build the run's Flower strategy: what the server knows, the defense made from it, the adapter around it."""

from __future__ import annotations

import hashlib
import json

import torch

from fl_sim.clients.faults import is_dropped
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.devices import pick_device
from fl_sim.models import build_model
from fl_sim.seeding import derive_seed
from fl_sim.server.aggregation import DefensePlan, FederatedStrategy, Sampling, ServerKnowledge
from fl_sim.server.payload_guard import GuardLimits
from fl_sim.server.routing import Routing, scenario_cohort_size


def server_knowledge(s: Scenario, data: FederatedData, plan: DefensePlan) -> ServerKnowledge:
    """What the server of ``s`` knows, for its defense: never the attack section, the roles or the seed."""
    model, pretrained = s.model.name, s.model.pretrained
    num_classes, input_shape = data.num_classes, tuple(data.input_shape)  # the closure holds no client data

    def factory() -> torch.nn.Module:
        return build_model(model, num_classes, input_shape, pretrained)

    return ServerKnowledge(
        cohort_size=plan.rule_inputs or scenario_cohort_size(s),  # what the rule receives, after pre-aggregation
        num_clients=s.federation.num_clients,
        calibration=data.calibration,
        num_classes=data.num_classes,
        input_shape=tuple(data.input_shape),
        vocab_size=data.text.vocab_size() if data.text is not None else None,
        training=s.training,
        deployment=s.evaluation,
        device=pick_device(s.evaluation.device),
        params=plan.params,
        assumed_f=plan.assumed_f,
        model_factory=factory,
        rng_key=server_rng_key(s),
    )


def server_rng_key(s: Scenario) -> int:
    """The key of the server's own random streams: the run's seed mixed with a digest of the whole scenario.

    A key derived from the seed alone could be inverted by trying every small seed, and the seed gives
    the roles; with the scenario's digest mixed in, recovering it needs the attack section as well.
    """
    raw = s.model_dump(mode="json")
    raw.pop("output_dir")
    raw["data"].pop("path")  # where the data sits on this machine must not change the server's draws
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    return derive_seed(s.seed, "server", digest)


def build_strategy(
    s: Scenario, plan: DefensePlan, data: FederatedData, node_of: dict[int, int] | None = None
) -> FederatedStrategy:
    """The run's strategy; ``node_of`` maps partition id -> Flower node id."""
    g = s.federation.guard
    return FederatedStrategy(
        defense=plan.defense(server_knowledge(s, data, plan)),
        sampling=Sampling(s.seed, s.federation.num_clients, scenario_cohort_size(s)),
        routing=Routing(node_of or {}, s.federation.num_clients),
        limits=GuardLimits(g.max_norm_ratio, g.max_examples_ratio),
        dropped=lambda rnd, pid: is_dropped(s, rnd, pid),
        pre=plan.pre_steps(),
    )
