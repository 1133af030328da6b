"""Task-circuit mixed precision (TaCQ, Xiao et al., arXiv 2504.07389; ../REFERENCE §4).

Saliency of weight W_ij: S_ij = |G_ij * (W_ij - Q(W)_ij) * W_ij|, with G_ij = sum over calibration
samples of |dL/dW_ij| (per-sample absolute gradients of the task loss, computed with torch.func's
vmap, no Python loop over samples). The top ``keep_fraction`` of weights, chosen GLOBALLY across
all quantized layers, stay in 16-bit; the rest are quantized (round-to-nearest base).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fl_sim.config.precision import QuantSpec
from fl_sim.quantization.fake_quant_model import quantizable_layers
from fl_sim.quantization.primitives import fake_quantize


def per_sample_abs_grad_sum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 64) -> dict[str, torch.Tensor]:
    """G = sum_n |dL(x_n, y_n)/dW| for the weight of every quantizable layer (keyed by layer name)."""
    names = {f"{n}.weight": n for n, _ in quantizable_layers(model)}
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    total = {layer: torch.zeros_like(params[w]) for w, layer in names.items()}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), chunk):
            g = per_sample(params, x[i : i + chunk], y[i : i + chunk])
            for w, layer in names.items():
                total[layer] += g[w].abs().sum(0)
    finally:
        model.train(was_training)
    return total


def saliency(model: nn.Module, spec: QuantSpec, grad_sum: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """S = |G * (W - Q(W)) * W| per quantizable layer."""
    out: dict[str, torch.Tensor] = {}
    for name, m in quantizable_layers(model):
        w = cast(torch.Tensor, m.weight).detach()
        err = w - fake_quantize(w, spec.bits, spec.weight_symmetric, per_channel=spec.per_channel)
        out[name] = (grad_sum[name] * err * w).abs()
    return out


def top_fraction_masks(scores: dict[str, torch.Tensor], keep_fraction: float) -> dict[str, torch.Tensor]:
    """Boolean masks selecting the globally largest ``keep_fraction`` of all scores (at least one)."""
    if not 0.0 <= keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1), got {keep_fraction}")
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    k = int(round(keep_fraction * flat.numel()))
    if k == 0:
        return {n: torch.zeros_like(s, dtype=torch.bool) for n, s in scores.items()}
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    chosen[torch.topk(flat, k).indices] = True
    masks, start = {}, 0
    for n, s in scores.items():
        masks[n] = chosen[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return masks


def tacq_masks(
    model: nn.Module,
    spec: QuantSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    keep_fraction: float,
) -> dict[str, torch.Tensor]:
    """Return the weights TaCQ keeps in 16-bit for ``model`` at ``spec``, from calibration data (x, y).

    One boolean mask per quantizable layer name, shaped like its weight: the ``keep_fraction`` of all
    the weights (rounded to a count) with the largest saliency, chosen globally across layers.
    """
    return top_fraction_masks(saliency(model, spec, per_sample_abs_grad_sum(model, x, y)), keep_fraction)
