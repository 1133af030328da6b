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


def test_client_partitions_are_lazy_views_of_the_eager_split():
    from flwr_datasets.partitioner import IidPartitioner

    from fl_sim.data.partition import ClientPartitions, client_sets, split_server_calibration
    from fl_sim.data.tensors import ExampleSet

    gen = torch.Generator().manual_seed(0)
    train = ExampleSet(torch.rand(50, 1, 2, 2, generator=gen), torch.arange(50) % 5)
    split = split_server_calibration(50, 10, seed=1)
    parts = client_sets(train, split, IidPartitioner(num_partitions=4))
    assert isinstance(parts, ClientPartitions) and len(parts) == 4
    pool = train.subset(split.client_pool)  # the eager construction: pool first, then each partition
    eager_idx = partition_indices(pool.y, IidPartitioner(num_partitions=4))
    seen = []
    for i, part in enumerate(parts):
        eager = pool.subset(eager_idx[i])
        assert torch.equal(part.x, eager.x) and torch.equal(part.y, eager.y)
        seen.append(len(part))
    assert parts.sizes() == seen and sum(seen) == 40
    assert [len(p) for p in parts[1:3]] == seen[1:3]
    with pytest.raises(IndexError):
        parts[4]
    calib = set(split.calibration.tolist())
    assert not calib & {int(j) for idx in parts._indices for j in idx}  # never the server's examples


def test_more_clients_than_examples_is_a_clear_error():
    from flwr_datasets.partitioner import IidPartitioner

    with pytest.raises(ValueError, match="3 clients but only 2 examples"):
        partition_indices(torch.tensor([0, 1]), IidPartitioner(num_partitions=3))
