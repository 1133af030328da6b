"""Reader for the IDX format (LeCun's MNIST layout): big-endian header, then raw uint8 data.

Any dataset stored as ``{train,t10k|test}-{images-idx3,labels-idx1}-ubyte[.gz]`` in one folder
loads the same way (MNIST, Fashion-MNIST, KMNIST, ...).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from fl_sim.data.tensors import Dataset, ExampleSet
from fl_sim.errors import UserError

_MAGIC_IMAGES, _MAGIC_LABELS = 2051, 2049


def read_idx(path: Path) -> npt.NDArray[np.uint8]:
    """Decode one IDX file (optionally gzipped) into a uint8 array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise UserError(f"{path}: header declares {expected} values but the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find(folder: Path, prefixes: tuple[str, ...], kind: str) -> Path:
    for prefix in prefixes:
        for suffix in ("", ".gz"):
            for sep in ("-", "."):
                p = folder / f"{prefix}-{kind}{sep}ubyte{suffix}"
                if p.is_file():
                    return p
    raise UserError(f"data folder {folder} has no {prefixes[0]}-{kind}-ubyte[.gz] file")


def _split(folder: Path, prefixes: tuple[str, ...]) -> ExampleSet:
    images = read_idx(_find(folder, prefixes, "images-idx3"))
    labels = read_idx(_find(folder, prefixes, "labels-idx1"))
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return ExampleSet(x.contiguous(), torch.from_numpy(labels.astype(np.int64)))


def load_idx_folder(folder: str | Path) -> Dataset:
    """Load train and test splits from an IDX folder."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"data folder not found: {path}")
    train = _split(path, ("train",))
    test = _split(path, ("t10k", "test"))
    num_classes = int(max(train.y.max(), test.y.max())) + 1
    return Dataset(name=f"idx:{path.name}", train=train, test=test, num_classes=num_classes)
