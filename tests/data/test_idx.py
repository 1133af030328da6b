"""IDX reading: a file made here, and the real MNIST in ../shared/data when it is present."""

import gzip
import struct

import numpy as np
import pytest

from fl_sim.data.idx import load_idx_folder, read_idx
from fl_sim.errors import UserError
from tests.conftest import SHARED_MNIST


def _write_idx(path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def _make_folder(folder, n_train=12, n_test=5, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    imgs, labels = rng.integers(0, 256, (n_train, 6, 6)), rng.integers(0, 3, n_train)
    _write_idx(folder / f"train-images-idx3-ubyte{sfx}", imgs, gz)
    _write_idx(folder / f"train-labels-idx1-ubyte{sfx}", labels, gz)
    _write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 6, 6)), gz)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 3, n_test), gz)
    return imgs, labels


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, gz):
    imgs, labels = _make_folder(tmp_path, gz=gz)
    ds = load_idx_folder(tmp_path)
    assert ds.train.x.shape == (12, 1, 6, 6) and ds.test.x.shape == (5, 1, 6, 6)
    assert np.allclose(ds.train.x[:, 0].numpy() * 255, imgs)
    assert ds.train.y.tolist() == labels.tolist()


def test_truncated_idx_is_a_user_error(tmp_path):
    p = tmp_path / "bad-idx"
    p.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x01\x02")
    with pytest.raises(UserError, match="declares 10 values"):
        read_idx(p)


def test_folder_without_files(tmp_path):
    with pytest.raises(UserError, match="no train-images-idx3"):
        load_idx_folder(tmp_path)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="real MNIST folder ../shared/data/mnist not present")
def test_real_mnist_loads_with_canonical_counts():
    ds = load_idx_folder(SHARED_MNIST)
    assert ds.train.x.shape == (60000, 1, 28, 28) and len(ds.test) == 10000
    assert ds.num_classes == 10
    assert np.bincount(ds.test.y.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
