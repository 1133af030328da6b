"""The federation's data as every process sees it.

The same client partitions, the server's calibration set and the test set, built deterministically
from the scenario and cached per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from fl_sim.config.schema import DataConfig
from fl_sim.data import text_sources  # noqa: F401  (registers the text datasets)
from fl_sim.data.partition import ClientPartitions, client_sets, make_partitioner, split_server_calibration
from fl_sim.data.sources import DATASETS
from fl_sim.data.tensors import Dataset, ExampleSet
from fl_sim.data.text import TextCodec
from fl_sim.seeding import derive_seed


@dataclass(frozen=True, eq=False)  # hashed by identity: per-process caches key on it
class FederatedData:
    """Client shards, the server's calibration set and test set.

    For text, ``text`` is also the codec that made their token ids.
    """

    name: str
    num_classes: int
    clients: ClientPartitions | Sequence[ExampleSet]  # materialised per access (see ClientPartitions)
    calibration: ExampleSet
    test: ExampleSet
    text: TextCodec | None = None

    def client_sizes(self) -> list[int]:
        """Each client's number of examples, without materialising any client's set."""
        c = self.clients
        return c.sizes() if isinstance(c, ClientPartitions) else [len(x) for x in c]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) for images, (L,) for token ids."""
        return self.test.shape


def _cap(s: ExampleSet, limit: int | None, seed: int) -> ExampleSet:
    if limit is None or limit >= len(s):
        return s
    perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(seed))
    return s.subset(perm[:limit])


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the whole dataset that ``cfg`` names, from its registered source (no capping, no split)."""
    return DATASETS.get(cfg.source)(path=cfg.path, hub_name=cfg.hub_name, tokenizer=cfg.tokenizer, max_length=cfg.max_length)


def build_federated_data(cfg: DataConfig, num_clients: int, seed: int) -> FederatedData:
    """Load, cap, hold out the server's calibration set, and partition the rest."""
    ds = load_dataset(cfg)
    train = _cap(ds.train, cfg.max_train_examples, derive_seed(seed, "cap-train"))
    test = _cap(ds.test, cfg.max_test_examples, derive_seed(seed, "cap-test"))
    split = split_server_calibration(len(train), cfg.calibration_size, derive_seed(seed, "calibration"))
    part = make_partitioner(
        cfg.partitioner.value, num_clients, derive_seed(seed, "partition") % (2**32), cfg.alpha, cfg.classes_per_client
    )
    return FederatedData(ds.name, ds.num_classes, client_sets(train, split, part), train.subset(split.calibration), test, ds.text)


@lru_cache(maxsize=4)
def _cached(cfg_json: str, num_clients: int, seed: int) -> FederatedData:
    return build_federated_data(DataConfig.model_validate_json(cfg_json), num_clients, seed)


def federated_data(cfg: DataConfig, num_clients: int, seed: int) -> FederatedData:
    """``build_federated_data`` memoised per process (Ray actors reuse it across rounds)."""
    return _cached(cfg.model_dump_json(), num_clients, seed)
