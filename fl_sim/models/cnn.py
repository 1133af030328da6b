"""Convolutional image classifiers (no BatchNorm: FedAvg averages every tensor as is)."""

from __future__ import annotations

from torch import nn

from fl_sim.models.registry import MODELS


def _check_shape(name: str, in_shape: tuple[int, int, int], channels: int, side: int) -> None:
    if tuple(in_shape) != (channels, side, side):
        raise ValueError(f"model {name!r} expects inputs of shape ({channels}, {side}, {side}), got {tuple(in_shape)}")


@MODELS.register("mnist_cnn", "CNN for 28x28 grayscale: conv32-conv64-pool-fc128 (~0.42M params)")
def mnist_cnn(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """Build the MNIST CNN: conv32-pool-conv64-pool-fc128-fc``num_classes`` on (1, 28, 28) inputs."""
    _check_shape("mnist_cnn", in_shape, 1, 28)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


@MODELS.register("cifar_cnn", "CIFAR-style CNN for 32x32 colour: 3 conv blocks (32-64-128) + fc256")
def cifar_cnn(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """Build the CIFAR-style CNN: three conv-conv-pool blocks (32, 64, 128 channels), fc256, fc``num_classes``.

    It takes (3, 32, 32) inputs; any other shape raises ValueError.
    """
    _check_shape("cifar_cnn", in_shape, 3, 32)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 128),
        nn.Flatten(),
        nn.Linear(128 * 4 * 4, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )
