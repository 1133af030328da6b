"""The model registry and the one entry point that builds a model by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fl_sim.registry import Registry

ModelFactory = Callable[..., nn.Module]  # (num_classes, input shape, **options) -> model
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(name: str, num_classes: int, in_shape: tuple[int, ...], pretrained: str | None = None) -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` ((C, H, W) images, (L,) token ids)
    and ``num_classes`` outputs; ``pretrained`` names the checkpoint of a pretrained model."""
    if pretrained is None:
        return MODELS.get(name)(num_classes, in_shape)
    return MODELS.get(name)(num_classes, in_shape, pretrained=pretrained)
