"""The model registry and the one entry point that builds a model by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fl_sim.registry import Registry

ModelFactory = Callable[..., nn.Module]  # (num_classes, input shape, **options) -> model
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(name: str, num_classes: int, in_shape: tuple[int, ...], pretrained: str | None = None) -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` and ``num_classes`` outputs.

    Parameters
    ----------
    name : str
        A name registered in ``MODELS``.
    num_classes : int
        The number of outputs (logits).
    in_shape : tuple[int, ...]
        One example's shape: (C, H, W) images, (L,) token ids.
    pretrained : str or None
        The checkpoint of a pretrained model; passed on to the constructor only when set.

    Returns
    -------
    nn.Module
        The freshly built model.
    """
    if pretrained is None:
        return MODELS.get(name)(num_classes, in_shape)
    return MODELS.get(name)(num_classes, in_shape, pretrained=pretrained)
