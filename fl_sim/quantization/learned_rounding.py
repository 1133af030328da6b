"""Learned rounding: AdaRound's relaxed per-weight rounding, and EFRAP's flipped start.

AdaRound (Nagel et al., ICML 2020; ../REFERENCE §8): weight i takes the integer floor(p_i) + h(V_i),
p_i its position on the grid (in steps) and h the rectified sigmoid
``clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1)``; V is learned layer by layer to reconstruct the FP
layer's output on calibration inputs, with the regulariser ``sum(1 - |2h - 1|^beta)`` (beta annealed
from 20 to 2 after a warm-up) driving every h to 0 or 1.

EFRAP (Li et al., CVPR 2024, "Nearest is Not Dearest"): a quantization-conditioned backdoor lives
in the rounding errors, so round-to-nearest is what the attacker planned for. Start from the
NON-nearest rounding of the output neurons whose truncation error (the sum over the neuron's weights
of the distance to the nearest integer, in steps) is largest ("error-guided flipped rounding"),
then learn the rounding that preserves the FP layer's activations ("activation preservation",
AdaRound's objective). Needs the FP model and unlabeled calibration inputs; no trigger, no labels.

The grid (scale, zero point) is the deployer's and stays fixed: every learned integer is one of the
weight's two neighbours inside the integer range, so the scale-setting extremes keep their integers
and quantizing the returned weights again gives the same integers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.quantization.fake_quant_model import layer_io, quantizable_layers, transformed_layers
from fl_sim.quantization.intervals import QuantGrid, WeightQuantizer, quant_grid, range_box
from fl_sim.quantization.rounding import nearest, positions

ZETA, GAMMA = 1.1, -0.1  # AdaRound's stretch of the sigmoid, so that h reaches 0 and 1 exactly

# (layer input batch) -> the input as the deployed model sees it (activation fake quantization)
InputQuantizer = Callable[[str, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RoundingConfig:
    """How the rounding of each layer is learned (AdaRound's schedule)."""

    steps: int = 500
    lr: float = 0.01
    reg_weight: float = 0.01
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2  # share of the steps without the regulariser
    batch_size: int = 64

    def __post_init__(self) -> None:
        """Check the schedule; ValueError naming the bad value."""
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.lr <= 0 or self.reg_weight < 0:
            raise ValueError(f"lr must be > 0 and reg_weight >= 0, got {self.lr}, {self.reg_weight}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not self.beta_start >= self.beta_end > 0:
            raise ValueError(f"need beta_start >= beta_end > 0, got {self.beta_start}, {self.beta_end}")


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """AdaRound's h(V) in [0, 1]."""
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def latent_for(h: torch.Tensor) -> torch.Tensor:
    """The V with h(V) = ``h`` (for h strictly inside (0, 1); 0 and 1 map to the finite V of h = 0.01 / 0.99)."""
    h = h.clamp(0.01, 0.99)
    return -torch.log((ZETA - GAMMA) / (h - GAMMA) - 1.0)


def truncation_error(w: torch.Tensor, grid: QuantGrid) -> torch.Tensor:
    """Per output neuron (dim 0), the sum over its weights of |p - nearest(p)|, in steps (EFRAP's neuron-wise error)."""
    r = (positions(w, grid) - nearest(w, grid).to(w.dtype)).abs()
    return r.reshape(r.shape[0], -1).sum(dim=1) if r.dim() > 1 else r


def flipped_neurons(w: torch.Tensor, grid: QuantGrid, share: float) -> torch.Tensor:
    """Boolean per output neuron: the ``share`` (0..1) of neurons with the largest truncation error (at least one if share > 0)."""
    if not 0 <= share <= 1:
        raise ValueError(f"flip share must be in [0, 1], got {share}")
    err = truncation_error(w, grid)
    k = 0 if share == 0 else max(1, round(share * err.numel()))
    mask = torch.zeros_like(err, dtype=torch.bool)
    mask[torch.topk(err, k).indices] = True
    return mask


def start_fraction(w: torch.Tensor, grid: QuantGrid, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Each weight's starting h: its fractional position above floor(p) (AdaRound), mirrored (1 - frac) in ``flip`` neurons.

    A mirrored fraction starts the weight on the other side of 1/2, i.e. at its non-nearest rounding.
    """
    frac = (positions(w, grid) - _floor_in_range(w, grid)).clamp(0.0, 1.0)
    if flip is None:
        return frac
    rows = flip.reshape(-1, *([1] * (w.dim() - 1))) if w.dim() > 1 else flip
    return torch.where(rows, 1.0 - frac, frac)


def _floor_in_range(w: torch.Tensor, grid: QuantGrid) -> torch.Tensor:
    """floor(p), clamped so that floor(p) and floor(p) + 1 both lie in the integer range."""
    return torch.clamp(torch.floor(positions(w, grid)), grid.qmin, grid.qmax - 1)


def grid_values(ints: torch.Tensor, grid: QuantGrid) -> torch.Tensor:
    """The FP values the integers stand for on ``grid``: (q + zero_point) * step."""
    return (ints.to(grid.step.dtype) + grid.zero_point) * grid.step


def _layer_op(m: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(input, weight) -> the layer's output with its own bias, stride and padding."""
    if isinstance(m, nn.Conv2d):
        return lambda x, w: cast(torch.Tensor, m._conv_forward(x, w, m.bias))
    return lambda x, w: F.linear(x, w, cast("torch.Tensor | None", m.bias))


def learn_layer_rounding(
    w: torch.Tensor,
    grid: QuantGrid,
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    start: torch.Tensor,
    held: torch.Tensor,
    cfg: RoundingConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Learn one layer's integers (int64): the rounding that makes ``op(inputs, Q(w))`` reconstruct ``targets``.

    ``start`` is each weight's starting h (``start_fraction``); minibatches of ``cfg.batch_size``
    calibration rows are drawn from ``generator``. The weights in ``held`` (the scale-setting extremes)
    keep their nearest integer, so the grid stays the deployer's.
    """
    w = w.detach()
    base = _floor_in_range(w, grid)
    v = latent_for(start.to(w.dtype)).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=cfg.lr)
    n, warm = inputs.shape[0], int(cfg.warmup * cfg.steps)
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator).to(inputs.device)
        h = rectified_sigmoid(v)
        wq = (base + h + grid.zero_point) * grid.step
        loss = F.mse_loss(op(inputs[idx], wq), targets[idx])
        if step >= warm and cfg.reg_weight > 0:
            t = (step - warm) / max(1, cfg.steps - warm)
            beta = cfg.beta_end + 0.5 * (cfg.beta_start - cfg.beta_end) * (1 + math.cos(math.pi * t))
            loss = loss + cfg.reg_weight * (1 - (2 * h - 1).abs().pow(beta)).sum()
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
    with torch.no_grad():
        learned = (base + (rectified_sigmoid(v) >= 0.5).to(w.dtype)).to(torch.int64)
        return torch.where(held, nearest(w, grid), learned)


def reconstruct_rounding(
    model: nn.Module,
    quantizer: WeightQuantizer,
    calibration: torch.Tensor,
    quantize_input: InputQuantizer,
    cfg: RoundingConfig,
    flip_share: float,
    generator: torch.Generator,
) -> nn.Module:
    """A copy of ``model`` whose Conv/Linear weights sit on the deployer's grid, their rounding learned layer by layer.

    Layer by layer, in order: its FP output on ``calibration`` (the FP model) is the target; its input
    is what the already-rounded layers before it produce, passed through ``quantize_input`` (the
    deployed activation quantizer). ``flip_share`` > 0 starts the neurons with the largest truncation
    error at their non-nearest rounding (EFRAP); 0 is plain AdaRound.
    """
    out = copy.deepcopy(model)
    fp_layers = dict(quantizable_layers(model))
    for name, m in quantizable_layers(out):
        w = cast(torch.Tensor, m.weight)
        grid = quant_grid(w, quantizer)
        _, target = layer_io(model, fp_layers[name], calibration)
        with transformed_layers(out, lambda _n, t: t, quantize_input):  # earlier layers rounded, inputs quantized
            x, _ = layer_io(out, m, calibration)
        inputs = quantize_input(name, x)
        flip = flipped_neurons(w, grid, flip_share) if flip_share > 0 else None
        start = start_fraction(w, grid, flip)
        held = range_box(w, quantizer).pinned
        ints = learn_layer_rounding(w, grid, _layer_op(fp_layers[name]), inputs, target, start, held, cfg, generator)
        with torch.no_grad():
            w.copy_(grid_values(ints, grid))
    return out
