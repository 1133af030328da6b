"""Random calibration sets for the worst-case PTQ protocol (Yuan et al., arXiv 2303.13003;
../REFERENCE §3). Pure functions of a seeded ``torch.Generator``; vectorised, no per-sample loops."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fl_sim.config.schema import Distribution
from fl_sim.data.tensors import ImageSet

NOISE_STD = 0.2  # corrupted draws: Gaussian noise of this std after a 3x3 box blur, clamped to [0, 1]


def corrupt(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    blurred = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    noise = torch.randn(x.shape, generator=gen) * NOISE_STD
    return (blurred + noise).clamp(0.0, 1.0)


def _pick(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[: min(size, n)]


def draw_calibration(
    clients: Sequence[ImageSet], size: int, distribution: Distribution, num_classes: int, gen: torch.Generator,
) -> ImageSet:
    """One calibration set of (at most) ``size`` examples drawn from the clients' data."""
    if distribution is Distribution.CLIENT:
        c = clients[int(torch.randint(len(clients), (1,), generator=gen))]
        return c.subset(_pick(len(c), size, gen))
    pool = ImageSet(torch.cat([c.x for c in clients]), torch.cat([c.y for c in clients]))
    if distribution is Distribution.IMBALANCED:
        k = int(torch.randint(1, max(2, num_classes // 3) + 1, (1,), generator=gen))
        classes = torch.randperm(num_classes, generator=gen)[:k]
        idx = torch.nonzero(torch.isin(pool.y, classes)).flatten()
        return pool.subset(idx[_pick(len(idx), size, gen)])
    draw = pool.subset(_pick(len(pool), size, gen))
    if distribution is Distribution.CORRUPTED:
        return ImageSet(corrupt(draw.x, gen), draw.y)
    return draw
