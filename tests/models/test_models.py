"""Registered models build for their input shapes and refuse others."""

import pytest
import torch

from fl_sim.models import MODELS, build_model


@pytest.mark.parametrize("name,shape", [("mnist_cnn", (1, 28, 28)), ("cifar_cnn", (3, 32, 32))])
def test_forward_shape(name, shape):
    m = build_model(name, 10, shape)
    assert m(torch.zeros(2, *shape)).shape == (2, 10)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="expects inputs of shape"):
        build_model("mnist_cnn", 10, (3, 32, 32))


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register("mnist_cnn", "again")(lambda n, s: None)
