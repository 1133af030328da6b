"""Noise before rounding: Gaussian noise of a fraction of a grid step added to the weights before quantizing.

Egashira et al. (NeurIPS 2024, "Exploiting LLM Quantization"; ../REFERENCE §8) suggest it as the
defense against attacks that place weights inside their quantization intervals: noise of sigma
steps moves a weight that sits less than about sigma steps from a rounding boundary across it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn

from fl_sim.quantization.fake_quant_model import quantizable_layers
from fl_sim.quantization.intervals import WeightQuantizer, quant_grid


@contextmanager
def weight_noise(model: nn.Module, quantizer: WeightQuantizer, sigma: float, generator: torch.Generator) -> Iterator[nn.Module]:
    """Add Gaussian noise of ``sigma`` grid steps to every quantized weight inside the block.

    Inside the block every quantized weight carries Gaussian noise of ``sigma`` steps of its own
    grid under ``quantizer``; the weights are restored on exit. The noise is drawn from
    ``generator`` on the CPU, layer by layer, and the block receives ``model``.
    """
    saved = []
    try:
        with torch.no_grad():
            for _, m in quantizable_layers(model):
                w = cast(torch.Tensor, m.weight)
                step = quant_grid(w, quantizer).step
                noise = torch.randn(w.shape, generator=generator).to(device=w.device, dtype=w.dtype)
                saved.append((w, w.detach().clone()))
                w.add_(sigma * step * noise)
        yield model
    finally:
        with torch.no_grad():
            for w, orig in saved:
                w.copy_(orig)
