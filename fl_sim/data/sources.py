"""Registered dataset sources. Each returns a ``Dataset`` of [0, 1] images.

- ``idx``: a folder of IDX files (MNIST layout), offline.
- ``hub``: a Hugging Face dataset by name (needs network), e.g. ``ylecun/mnist``.
- ``digits``: scikit-learn's bundled 8x8 digits upsampled to 28x28; ships with a dependency,
  so the quickstart needs no files and no network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from fl_sim.data.idx import load_idx_folder
from fl_sim.data.tensors import Dataset, ExampleSet
from fl_sim.errors import UserError
from fl_sim.registry import Registry

if TYPE_CHECKING:
    from datasets import Dataset as HFDataset

SourceFn = Callable[..., Dataset]
DATASETS: Registry[SourceFn] = Registry("dataset")


@DATASETS.register("idx", "folder of IDX files in the MNIST layout (data.path)")
def idx_source(path: str | None, **_: object) -> Dataset:
    """Load the IDX folder ``path`` (``data.path``); UserError if it is not set."""
    if not path:
        raise UserError("data.source 'idx' needs data.path (a folder of IDX files)")
    return load_idx_folder(path)


@DATASETS.register("digits", "scikit-learn's bundled digits (1,797 images), upsampled to 28x28; offline")
def digits_source(test_fraction: float = 0.2, **_: object) -> Dataset:
    """Load scikit-learn's 8x8 digits, upsampled (bilinear) to 28x28 images in [0, 1].

    The test split is the fraction ``test_fraction`` of a fixed permutation (not seed-dependent), so
    that every scenario sees the same test set.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1)
    y = torch.from_numpy(d.target.astype(np.int64))
    # A fixed split (not seed-dependent) so that every scenario sees the same test set.
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1797))
    n_test = int(round(len(y) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits", ExampleSet(x[train], y[train]), ExampleSet(x[test], y[test]), 10)


def _hub_split(ds: HFDataset, image_key: str, label_key: str) -> ExampleSet:
    arrays = [np.asarray(img, dtype=np.float32) / 255.0 for img in ds[image_key]]
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return ExampleSet(x.contiguous(), torch.tensor(ds[label_key], dtype=torch.int64))


@DATASETS.register("hub", "a Hugging Face image dataset by name (data.hub_name); needs network")
def hub_source(hub_name: str | None, image_key: str = "image", label_key: str = "label", **_: object) -> Dataset:
    """Load the Hugging Face image dataset ``hub_name`` (``data.hub_name``; needs network).

    The dataset needs ``train`` and ``test`` splits; images come from the ``image_key`` column (or
    ``img`` where the train split has no such column), labels from ``label_key``. Pixels are scaled
    to [0, 1]. Any loading error becomes a UserError.
    """
    if not hub_name:
        raise UserError("data.source 'hub' needs data.hub_name, e.g. 'ylecun/mnist'")
    try:
        from datasets import load_dataset

        dd = load_dataset(hub_name)
    except Exception as exc:  # network errors, unknown names: a user-level problem
        raise UserError(f"could not load Hugging Face dataset {hub_name!r}: {str(exc).splitlines()[0]}") from exc
    if "train" not in dd or "test" not in dd:
        raise UserError(f"Hugging Face dataset {hub_name!r} needs 'train' and 'test' splits, has {list(dd)}")
    if image_key not in dd["train"].column_names:
        image_key = "img" if "img" in dd["train"].column_names else image_key
    train, test = _hub_split(dd["train"], image_key, label_key), _hub_split(dd["test"], image_key, label_key)
    num_classes = int(max(train.y.max(), test.y.max())) + 1
    return Dataset(f"hub:{hub_name}", train, test, num_classes)
