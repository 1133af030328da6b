"""Partitions: disjoint, cover the client pool, never include the server's calibration set,
and are identical for the same seed."""

import pytest
import torch

from fl_sim.config.schema import DataConfig
from fl_sim.data.federated import build_federated_data
from fl_sim.data.partition import make_partitioner, partition_indices


@pytest.mark.parametrize("kind", ["iid", "dirichlet", "pathological"])
def test_partitions_are_disjoint_and_cover(kind):
    labels = torch.arange(600) % 10
    parts = partition_indices(labels, make_partitioner(kind, 6, seed=1, alpha=0.5, classes_per_client=2))
    allidx = torch.cat(parts).tolist()
    assert len(allidx) == len(set(allidx))  # disjoint
    if kind != "pathological":  # pathological drops classes no partition was assigned
        assert len(allidx) == 600


def test_pathological_limits_classes():
    labels = torch.arange(600) % 10
    parts = partition_indices(labels, make_partitioner("pathological", 5, seed=1, alpha=0.5, classes_per_client=2))
    assert all(len(set(labels[p].tolist())) <= 2 for p in parts)


def test_federated_data_deterministic_and_holds_out_calibration():
    cfg = DataConfig(source="digits", calibration_size=50)
    a = build_federated_data(cfg, 5, seed=7)
    b = build_federated_data(cfg, 5, seed=7)
    for ca, cb in zip(a.clients, b.clients):
        assert torch.equal(ca.x, cb.x)
    n_pool = sum(len(c) for c in a.clients)
    assert n_pool + len(a.calibration) == 1797 - len(a.test)
    pool = torch.cat([c.x.flatten(1) for c in a.clients])
    # no calibration image appears among the clients' images
    d = torch.cdist(a.calibration.x.flatten(1), pool)
    assert float(d.min(dim=1).values.min()) > 0 or torch.unique(pool, dim=0).shape[0] < pool.shape[0]
