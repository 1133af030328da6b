"""Shared fixtures: tiny scenarios on the embedded digits data."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_sim.config.loader import validate_dict
from fl_sim.config.schema import Scenario
from fl_sim.wiring import Wiring, wire

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def tiny_raw(**sections) -> dict:
    raw = {
        "name": "tiny",
        "seed": 3,
        "data": {"source": "digits", "calibration_size": 64, "max_train_examples": 600, "max_test_examples": 200},
        "federation": {"num_clients": 4, "rounds": 2},
        "training": {"optimizer": "adam", "lr": 0.002, "epochs": 1, "batch_size": 32},
        "attack": {"num_malicious": 1, "behaviour": "qat_backdoor", "params": {"bits": [8, 4]}},
        "evaluation": {"precisions": ["fp32", "int8", "int4"]},
    }
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return raw


def scenario_of(raw: dict, origin: str = "test") -> Scenario:
    """A raw mapping validated and wired as ``fl-sim`` does (one-line UserError otherwise)."""
    from fl_sim.wiring import from_dict

    return from_dict(raw, origin).scenario


def scenario_file(path, overrides: list[str] | None = None) -> Scenario:
    """A scenario file read, overridden, validated and wired as ``fl-sim run`` does."""
    from fl_sim.wiring import load

    return load(path, overrides).scenario


def wired(s: Scenario | dict) -> Wiring:
    """The wiring of a scenario (or of a raw mapping, validated first)."""
    return wire(s if isinstance(s, Scenario) else validate_dict(s, "test"))


def make_strategy(s: Scenario, node_of: dict[int, int] | None = None):
    """The run's Flower strategy for ``s`` (wired, with the federation's data), as the round loop builds it."""
    from fl_sim.data.federated import federated_data
    from fl_sim.server.build import build_strategy

    data = federated_data(s.data, s.federation.num_clients, s.seed)
    return build_strategy(s, wire(s).defense, data, node_of)


def knowledge_for(s: Scenario):
    """What the server of ``s`` knows (its defense's ServerKnowledge)."""
    from fl_sim.data.federated import federated_data
    from fl_sim.server.build import server_knowledge

    return server_knowledge(s, federated_data(s.data, s.federation.num_clients, s.seed), wire(s).defense)


@pytest.fixture
def tiny_scenario():
    return scenario_of(tiny_raw(), "tiny")


@pytest.fixture
def task_identity():
    """Flower messages are created inside a run; give this process a run identity (restored after)."""
    from flwr.supercore.task_identity import TaskIdentity

    old = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = old


@pytest.fixture
def one_thread():
    """Tiny CNN passes: one intra-op thread is fastest (and does not contend with a busy machine)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
