"""Random calibration sets for the worst-case PTQ protocol (Yuan et al., arXiv 2303.13003; ../REFERENCE §3).

Pure functions of a seeded ``torch.Generator``; vectorised, no per-sample loops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fl_sim.config.schema import Distribution
from fl_sim.data.tensors import ExampleSet

NOISE_STD = 0.2  # corrupted draws: Gaussian noise of this std after a 3x3 box blur, clamped to [0, 1]
TOKEN_NOISE = 0.15  # corrupted text draws: this share of the word tokens replaced by random tokens of the draw


def corrupt_tokens(ids: torch.Tensor, pad_id: int, gen: torch.Generator) -> torch.Tensor:
    """Token noise: TOKEN_NOISE of the tokens between [CLS] and [SEP] replaced by the draw's own words.

    Replacements are drawn uniformly from the draw's own words (the textual counterpart of pixel
    noise); padding (``pad_id``), [CLS] and [SEP] are kept.
    """
    real = ids != pad_id
    inner = real.clone()
    inner[:, 0] = False
    inner[torch.arange(len(ids)), real.sum(1) - 1] = False  # keep [CLS] and [SEP]
    words = ids[inner]
    if len(words) == 0:
        return ids.clone()
    hit = inner & (torch.rand(ids.shape, generator=gen) < TOKEN_NOISE)
    out = ids.clone()
    out[hit] = words[torch.randint(len(words), (int(hit.sum()),), generator=gen)]
    return out


def corrupt(x: torch.Tensor, gen: torch.Generator, pad_id: int = 0) -> torch.Tensor:
    """Corrupted inputs: blur and noise on images, token noise on token ids."""
    if not x.is_floating_point():
        return corrupt_tokens(x, pad_id, gen)
    blurred = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    noise = torch.randn(x.shape, generator=gen) * NOISE_STD
    return (blurred + noise).clamp(0.0, 1.0)


def _pick(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[: min(size, n)]


def draw_calibration(
    clients: Sequence[ExampleSet],
    size: int,
    distribution: Distribution,
    num_classes: int,
    gen: torch.Generator,
    pad_id: int = 0,
) -> ExampleSet:
    """One calibration set of (at most) ``size`` examples drawn from the clients' data.

    Parameters
    ----------
    clients
        The clients' example sets.
    size
        Largest number of examples in the draw.
    distribution
        ``client``: from one random client's data; ``imbalanced``: from the pooled examples of 1 to
        ``max(2, num_classes // 3)`` random classes; ``in_distribution``: uniform over the pooled data;
        ``corrupted``: an in-distribution draw passed through ``corrupt``.
    num_classes
        Number of classes (for the imbalanced draw).
    gen
        The generator every random choice comes from.
    pad_id
        Padding token id (token-noise corruption of text).
    """
    if distribution is Distribution.CLIENT:
        c = clients[int(torch.randint(len(clients), (1,), generator=gen))]
        return c.subset(_pick(len(c), size, gen))
    pool = ExampleSet(torch.cat([c.x for c in clients]), torch.cat([c.y for c in clients]))
    if distribution is Distribution.IMBALANCED:
        k = int(torch.randint(1, max(2, num_classes // 3) + 1, (1,), generator=gen))
        classes = torch.randperm(num_classes, generator=gen)[:k]
        idx = torch.nonzero(torch.isin(pool.y, classes)).flatten()
        return pool.subset(idx[_pick(len(idx), size, gen)])
    draw = pool.subset(_pick(len(pool), size, gen))
    if distribution is Distribution.CORRUPTED:
        return ExampleSet(corrupt(draw.x, gen, pad_id), draw.y)
    return draw
