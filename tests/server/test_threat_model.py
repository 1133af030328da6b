"""Threat-model boundaries are code boundaries: a defense sees only what a real server knows.

The scenario's attack section, the colluders' identities and the run's seed are out of its reach; the
scenario schema is pure data; the assumed number of attackers f is a defense parameter whose
default (the true count) is recorded as such.
"""

import dataclasses
import subprocess
import sys

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from pydantic import BaseModel

from fl_sim.config.schema import AttackConfig, Scenario
from fl_sim.data.federated import federated_data
from fl_sim.models import build_model
from fl_sim.seeding import derive_seed
from fl_sim.server.aggregation import Aggregate, FederatedStrategy, RoundInput, Sampling, ServerKnowledge, TensorDefense
from fl_sim.server.build import server_knowledge, server_rng_key
from fl_sim.server.routing import Routing
from fl_sim.server.updates import float_keys
from tests.conftest import scenario_of, tiny_raw, wired

SEED = 1234567


def _scenario(**sections) -> Scenario:
    raw = tiny_raw(federation={"num_clients": 6, "rounds": 1}, attack={"num_malicious": 2}, **sections)
    return scenario_of({**raw, "seed": SEED}, "t")


def _values(obj: object, depth: int = 0) -> list[object]:
    """Every value reachable from ``obj`` through dataclass fields, pydantic fields and containers."""
    if depth > 6:
        return []
    out: list[object] = [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            out += _values(getattr(obj, f.name), depth + 1)
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            out += _values(getattr(obj, name), depth + 1)
    elif isinstance(obj, (list, tuple, set)):
        for v in obj:
            out += _values(v, depth + 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            out += _values(v, depth + 1)
    return out


def test_the_schema_imports_neither_torch_nor_flower():
    code = (
        "import sys, fl_sim.config.schema, fl_sim.config.loader; "
        "bad = sorted(m for m in ('torch', 'flwr', 'ray', 'numpy') if m in sys.modules); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_server_knowledge_holds_only_what_a_server_knows():
    s = _scenario()
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    k = server_knowledge(s, data, wired(s).defense)
    names = {f.name for f in dataclasses.fields(ServerKnowledge)}
    assert names == {
        "cohort_size",
        "num_clients",
        "calibration",
        "num_classes",
        "input_shape",
        "vocab_size",
        "training",
        "deployment",
        "device",
        "params",
        "assumed_f",
        "model_factory",
        "rng_key",
    }
    reachable = _values(k)
    assert not any(isinstance(v, (Scenario, AttackConfig)) for v in reachable)
    assert SEED not in [v for v in reachable if isinstance(v, int) and not isinstance(v, bool)]
    assert k.rng_key != SEED
    # The key is not a function of the seed alone: trying every small seed does not find it.
    assert all(derive_seed(x, "server") != k.rng_key for x in range(20_000))
    malicious = set(wired(s).malicious)
    assert len(malicious) == 2 and not any(isinstance(v, (set, frozenset, tuple)) and set(v) == malicious for v in reachable)


def test_the_server_key_needs_the_whole_scenario_but_not_the_data_folder(tmp_path):
    s = _scenario()
    other_attack = s.model_copy(update={"attack": s.attack.model_copy(update={"target_label": 3})})
    moved = s.model_copy(update={"data": s.data.model_copy(update={"path": str(tmp_path)})})
    assert server_rng_key(s) != server_rng_key(other_attack)
    assert server_rng_key(s) == server_rng_key(moved)


class Snoop(TensorDefense[BaseModel]):
    """A defense that tries to learn the attack section, the roles and the seed."""

    tried: dict[str, str] = {}

    def aggregate(self, r: RoundInput) -> Aggregate:
        for name in ("scenario", "attack", "seed", "malicious", "roles", "num_malicious"):
            try:
                getattr(self.knowledge, name)
                Snoop.tried[name] = "read"
            except AttributeError:
                Snoop.tried[name] = "refused"
        try:
            self.knowledge.roles = (0, 1)  # type: ignore[attr-defined]
            Snoop.tried["attach"] = "attached"
        except (AttributeError, TypeError, dataclasses.FrozenInstanceError):
            Snoop.tried["attach"] = "refused"
        n = r.updates.shape[0]
        return Aggregate(r.updates.mean(0), torch.full((n,), 1.0 / n, dtype=torch.float64))


@pytest.mark.usefixtures("task_identity")
def test_a_defense_cannot_reach_the_attack_the_roles_or_the_seed():
    s = _scenario()
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    n = s.federation.num_clients
    strategy = FederatedStrategy(
        defense=Snoop(server_knowledge(s, data, wired(s).defense)),
        sampling=Sampling(s.seed, n, n),
        routing=Routing({p: 100 + p for p in range(n)}, n),
    )
    g = build_model("mnist_cnn", 10, (1, 28, 28)).state_dict()
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    replies = [
        Message(
            RecordDict(
                {"arrays": ArrayRecord({k: v + 0.01 for k, v in g.items()}), "metrics": MetricRecord({"num-examples": 10})}
            ),
            reply_to=m,
        )
        for m in msgs
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None and set(arrays.to_torch_state_dict()) == set(g)
    assert Snoop.tried == {
        "scenario": "refused",
        "attack": "refused",
        "seed": "refused",
        "malicious": "refused",
        "roles": "refused",
        "num_malicious": "refused",
        "attach": "refused",
    }
    assert float_keys(g)  # the round really aggregated float entries


def test_assumed_f_is_a_defense_parameter_and_its_default_is_flagged():
    s = _scenario(strategy={"name": "krum"})
    plan = wired(s).defense
    assert (plan.assumed_f, plan.f_is_true_count) == (2, True)  # defaulted to the true count: recorded as such
    given = wired(_scenario(strategy={"name": "krum", "params": {"num_malicious": 1}})).defense
    assert (given.assumed_f, given.f_is_true_count) == (1, False)
    assert wired(_scenario(strategy={"name": "fedmedian"})).defense.assumed_f is None  # a rule without f


def test_the_defense_section_of_results_names_the_source_of_f():
    from fl_sim.reporting.outputs import defense_section
    from fl_sim.reporting.report import defense_lines

    section = defense_section("krum", wired(_scenario(strategy={"name": "krum"})).defense)
    assert section["assumed_f"] == 2 and "true count" in section["assumed_f_source"]
    assert "true count" in defense_lines(section)[0]
    assert defense_lines(defense_section("fedavg", wired(_scenario()).defense)) == []
