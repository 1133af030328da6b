"""Client partitions via flwr-datasets partitioners, plus the server's held-out sets.

The partitioners work on a ``datasets.Dataset``; we hand them a light one holding only each
example's index and label, and read the indices back. Every partitioner is seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import torch
from datasets import Dataset as HFDataset
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner, PathologicalPartitioner

from fl_sim.data.tensors import ExampleSet


@dataclass(frozen=True)
class ServerSplit:
    """Indices into the train split: the clients' pool and the server's calibration set."""

    client_pool: torch.Tensor
    calibration: torch.Tensor


def split_server_calibration(n: int, calibration_size: int, seed: int) -> ServerSplit:
    """Hold ``calibration_size`` random training examples out for the server (never given to clients)."""
    if calibration_size >= n:
        raise ValueError(f"calibration_size {calibration_size} must be smaller than the {n} training examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return ServerSplit(client_pool=perm[calibration_size:], calibration=perm[:calibration_size])


def make_partitioner(kind: str, num_partitions: int, seed: int, alpha: float, classes_per_client: int) -> Partitioner:
    """Make a seeded flwr-datasets partitioner by kind: iid, dirichlet(alpha) or pathological.

    Parameters
    ----------
    kind : str
        ``"iid"``, ``"dirichlet"`` or ``"pathological"``; anything else raises ValueError.
    num_partitions : int
        The number of clients.
    seed : int
        The partitioner's seed (dirichlet and pathological; not passed to iid).
    alpha : float
        The Dirichlet concentration (dirichlet only).
    classes_per_client : int
        The number of classes in each partition (pathological only).

    Returns
    -------
    Partitioner
        A partitioner with no dataset attached yet (``partition_indices`` attaches one).
    """
    if kind == "iid":
        return IidPartitioner(num_partitions=num_partitions)
    if kind == "dirichlet":
        return DirichletPartitioner(num_partitions, partition_by="label", alpha=alpha, min_partition_size=1, seed=seed)
    if kind == "pathological":
        return PathologicalPartitioner(
            num_partitions, partition_by="label", num_classes_per_partition=classes_per_client, seed=seed
        )
    raise ValueError(f"unknown partitioner {kind!r}")


def partition_indices(labels: torch.Tensor, partitioner: Partitioner) -> list[torch.Tensor]:
    """Return the indices (into ``labels``) of every partition, in partition-id order.

    The partitioner is handed a light dataset of only each example's index and label. ValueError if
    there are more partitions than examples, or if a partition comes out empty.
    """
    partitioner.dataset = HFDataset.from_dict({"idx": list(range(len(labels))), "label": labels.tolist()})
    if partitioner.num_partitions > len(labels):
        raise ValueError(
            f"{partitioner.num_partitions} clients but only {len(labels)} examples to share among them: "
            "use fewer clients or more data"
        )
    parts = [torch.tensor(partitioner.load_partition(i)["idx"], dtype=torch.int64) for i in range(partitioner.num_partitions)]
    empty = [i for i, p in enumerate(parts) if len(p) == 0]
    if empty:
        raise ValueError(f"partitioning left clients {empty} with no data: use fewer clients or more data")
    return parts


class ClientPartitions(Sequence[ExampleSet]):
    """Every client's examples as index lists into one shared train set.

    A client's ExampleSet is materialised only when it is asked for, so memory does not grow with
    the number of clients.
    """

    def __init__(self, train: ExampleSet, indices: list[torch.Tensor]) -> None:
        self._train = train
        self._indices = indices

    def __len__(self) -> int:
        """Return the number of clients."""
        return len(self._indices)

    @overload
    def __getitem__(self, i: int) -> ExampleSet: ...
    @overload
    def __getitem__(self, i: slice) -> list[ExampleSet]: ...
    def __getitem__(self, i: int | slice) -> ExampleSet | list[ExampleSet]:
        """Return client ``i``'s examples, materialised now (a list of them for a slice)."""
        if isinstance(i, slice):
            return [self._train.subset(idx) for idx in self._indices[i]]
        return self._train.subset(self._indices[i])  # raises IndexError past the end, as a Sequence must

    def sizes(self) -> list[int]:
        """Each client's number of examples (nothing materialised)."""
        return [len(idx) for idx in self._indices]


def client_sets(train: ExampleSet, split: ServerSplit, partitioner: Partitioner) -> ClientPartitions:
    """Each client's examples, drawn from the client pool only (indices into ``train``)."""
    pool = split.client_pool
    return ClientPartitions(train, [pool[idx] for idx in partition_indices(train.y[pool], partitioner)])
