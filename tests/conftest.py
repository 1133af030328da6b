"""Shared fixtures: tiny scenarios on the embedded digits data."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_sim import components  # noqa: F401
from fl_sim.config.loader import validate_dict

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


@pytest.fixture
def tiny_scenario():
    return validate_dict(tiny_raw(), "tiny")


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
