"""A trigger-agnostic probe of a quantization-conditioned backdoor: the patch that splits FP and quantized.

A backdoor that only the quantized model obeys is, by construction, an input feature on which the FP
model and its quantized twin disagree. The probe optimises a small square patch, pasted at each of a
grid of evenly spaced positions, to make the quantized model lose confidence in
the FP model's own prediction while the FP model keeps it:
``maximise mean(log p_fp(y_fp) - log p_q(y_fp))``, ``y_fp`` the FP arg-max on the patched input.
Gradients reach the patch through the quantized model's straight-through estimator. The score is the
share of held-out inputs, patched, on which the two models' predictions differ; a uniform-noise patch
at the same positions is the baseline the probe must beat. Needs no trigger and no labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ProbeConfig:
    """Patch side (pixels), optimisation steps per position, Adam's learning rate, minibatch size."""

    patch: int = 5
    steps: int = 100
    lr: float = 0.1
    batch_size: int = 64

    def __post_init__(self) -> None:
        """Check the settings; ValueError naming the bad value."""
        if self.patch < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"patch, steps and batch_size must be >= 1, got {self.patch}, {self.steps}, {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def patch_positions(height: int, width: int, k: int, per_side: int) -> list[tuple[int, int]]:
    """(top, left) of a k x k patch on a ``per_side`` x ``per_side`` grid of evenly spaced positions covering the image.

    The first and last positions touch the image's edges; 1 per side puts the patch in the centre.
    """
    if not (1 <= k <= height and k <= width):
        raise ValueError(f"a {k}x{k} patch does not fit a {height}x{width} image")
    if per_side < 1:
        raise ValueError(f"per_side must be >= 1, got {per_side}")

    def spots(n: int) -> list[int]:
        if per_side == 1:
            return [(n - k) // 2]
        return sorted({round(i * (n - k) / (per_side - 1)) for i in range(per_side)})

    return [(t, left) for t in spots(height) for left in spots(width)]


def stamp(x: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """``x`` (N, C, H, W) with ``patch`` (C, k, k) pasted at (top, left); differentiable in ``patch``."""
    k = patch.shape[-1]
    mask = torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
    mask[top : top + k, left : left + k] = 1
    canvas = F.pad(patch, (left, x.shape[-1] - left - k, top, x.shape[-2] - top - k))
    return x * (1 - mask) + canvas * mask


def split_loss(fp_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Minus the mean gap log p_fp(y_fp) - log p_q(y_fp): lower when the quantized model deserts the FP prediction."""
    y = fp_logits.argmax(1).detach()
    gap = F.log_softmax(fp_logits, 1).gather(1, y[:, None]) - F.log_softmax(q_logits, 1).gather(1, y[:, None])
    return -gap.mean()


def disagreement(fp: Logits, quantized: Logits, x: torch.Tensor) -> float:
    """Share of ``x`` on which the two models' arg-max predictions differ."""
    with torch.no_grad():
        return float((fp(x).argmax(1) != quantized(x).argmax(1)).float().mean())


def optimise_patch(
    fp: Logits,
    quantized: Logits,
    x: torch.Tensor,
    top: int,
    left: int,
    cfg: ProbeConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """The patch (C, k, k, values in [0, 1]) at (top, left) that best splits ``quantized`` from ``fp`` on ``x``."""
    shape = (x.shape[1], cfg.patch, cfg.patch)
    logit = (torch.rand(shape, generator=generator) * 2 - 1).to(x.device).requires_grad_(True)
    opt = torch.optim.Adam([logit], lr=cfg.lr)
    for _ in range(cfg.steps):
        idx = torch.randint(0, x.shape[0], (min(cfg.batch_size, x.shape[0]),), generator=generator).to(x.device)
        xp = stamp(x[idx], torch.sigmoid(logit), top, left)
        loss = split_loss(fp(xp), quantized(xp))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        opt.step()
    return torch.sigmoid(logit).detach()
