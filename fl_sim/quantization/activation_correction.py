"""Layer-wise activation correction of a quantized model towards its FP model (after LAC, ICML 2024).

LAC (Li et al., ICML 2024, ../REFERENCE §8) purifies a quantization-conditioned backdoor without a
trigger: layer by layer, the quantized model's activations are corrected towards the distribution
of the FP model's activations. The paper approximates that distribution from the FP model's
BatchNorm statistics; fl_sim's models have no BatchNorm, so the FP statistics here come from the
FP model's outputs on the server's unlabeled calibration set. Per output channel c of each
Conv/Linear layer, in order (each correction computed with the earlier ones in place):

- moment matching (channels: a Conv's dim 1, a Linear's last dim): ``y' = a_c y + b_c`` with ``a_c = std_fp / std_q`` and ``b_c = mean_fp - a_c mean_q``,
  so the corrected quantized channel has the FP channel's mean and standard deviation;
- bounds: ``y'`` is clipped to the FP channel's calibration range, widened by ``slack`` times its
  width (a trigger that drives a channel beyond anything clean inputs produce is cut there).

The correction is a per-channel multiply-add and clamp after the integer layer, as an integer
kernel's per-channel requantization multiplier would carry it; it stays in FP.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from fl_sim.quantization.fake_quant_model import layer_io, quantizable_layers

_EPS = 1e-8


@dataclass(frozen=True)
class ChannelStats:
    """Per channel (dim 1 of a layer's output): mean, standard deviation, min and max over everything else."""

    mean: torch.Tensor
    std: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor


def channel_stats(y: torch.Tensor, dim: int = 1) -> ChannelStats:
    """The statistics of each channel (dimension ``dim``) of ``y`` over every other dimension."""
    flat = y.detach().movedim(dim, 0).reshape(y.shape[dim], -1)
    return ChannelStats(flat.mean(dim=1), flat.std(dim=1, unbiased=False), flat.amin(dim=1), flat.amax(dim=1))


class Correction(nn.Module):
    """``clamp(a * y + b, lo, hi)`` per channel of a layer's output ``y`` (channels on ``dim``)."""

    scale: torch.Tensor
    shift: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, dim: int = 1) -> None:
        """Hold the per-channel factors as buffers (they travel with the model's device)."""
        super().__init__()
        self.dim = dim
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())
        self.register_buffer("lo", lo.detach().clone())
        self.register_buffer("hi", hi.detach().clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Correct ``y`` channel by channel."""
        shape = [1] * y.dim()
        shape[self.dim] = -1
        out = y * self.scale.view(shape) + self.shift.view(shape)
        return torch.maximum(torch.minimum(out, self.hi.view(shape)), self.lo.view(shape))


def correction_for(fp: ChannelStats, quantized: ChannelStats, slack: float, clip: bool, dim: int = 1) -> Correction:
    """The correction that gives the quantized channels the FP channels' mean and std (and, if ``clip``, their range)."""
    if slack < 0:
        raise ValueError(f"slack must be >= 0, got {slack}")
    scale = torch.where(quantized.std > _EPS, fp.std / quantized.std.clamp_min(_EPS), torch.ones_like(fp.std))
    shift = fp.mean - scale * quantized.mean
    width = (fp.hi - fp.lo) * slack
    inf = torch.full_like(fp.lo, float("inf"))
    lo, hi = (fp.lo - width, fp.hi + width) if clip else (-inf, inf)
    return Correction(scale, shift, lo, hi, dim)


class Corrected(nn.Module):
    """A Conv/Linear layer followed by its ``Correction`` (the wrapped layer keeps its own name, ``layer``)."""

    def __init__(self, layer: nn.Module, correction: Correction) -> None:
        """Wrap ``layer``."""
        super().__init__()
        self.layer = layer
        self.correction = correction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, corrected."""
        return self.correction(self.layer(x))  # type: ignore[no-any-return]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def correct_activations(
    model: nn.Module,
    quantized: Callable[[nn.Module], AbstractContextManager[nn.Module]],
    calibration: torch.Tensor,
    slack: float = 0.1,
    clip: bool = True,
    batch: int = 256,
) -> nn.Module:
    """A copy of ``model`` with a ``Correction`` after every Conv/Linear layer, computed layer by layer.

    ``quantized(m)`` is the deployer's quantization of a model ``m`` (a context in which ``m``
    computes quantized, its activation ranges calibrated on ``m``); each layer's correction is
    computed on ``calibration`` with the corrections of the layers before it already in place.
    """
    out = copy.deepcopy(model)
    for name, fp_layer in quantizable_layers(model):
        dim = 1 if isinstance(fp_layer, nn.Conv2d) else -1  # Conv: (N, C, H, W); Linear: (..., C)
        fp = channel_stats(layer_io(model, fp_layer, calibration, batch)[1], dim)
        layer = out.get_submodule(name)
        with quantized(out):
            q = channel_stats(layer_io(out, layer, calibration, batch)[1], dim)
        _replace(out, name, Corrected(layer, correction_for(fp, q, slack, clip, dim)))
    return out
