"""Dataset sources: the embedded default, and the Hub loader's error path offline."""

import pytest

from fl_sim.data.sources import DATASETS
from fl_sim.errors import UserError


def test_digits_embedded_default():
    ds = DATASETS.get("digits")()
    assert ds.train.shape == (1, 28, 28) and ds.num_classes == 10
    assert len(ds.train) + len(ds.test) == 1797
    assert 0.0 <= float(ds.train.x.min()) and float(ds.train.x.max()) <= 1.0


def test_hub_without_network_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match="could not load Hugging Face dataset"):
        DATASETS.get("hub")(hub_name="ylecun/mnist")


def test_hub_needs_a_name():
    with pytest.raises(UserError, match="needs data.hub_name"):
        DATASETS.get("hub")(hub_name=None)
