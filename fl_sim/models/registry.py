"""The model registry and the one entry point that builds a model by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fl_sim.registry import Registry

ModelFactory = Callable[[int, tuple[int, int, int]], nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(name: str, num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """Build model ``name`` for inputs of shape (C, H, W) and ``num_classes`` outputs."""
    return MODELS.get(name)(num_classes, in_shape)
