"""In-memory labelled example sets held as two tensors.

Images are floats in [0, 1] of shape (N, C, H, W); text is int64 token ids of shape (N, L), padded
with the tokenizer's pad id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from fl_sim.data.text import TextCodec


@dataclass(frozen=True)
class ExampleSet:
    """A labelled set of images or token-id sequences."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        """Check the shapes: (N, C, H, W) or (N, L) inputs and N labels; ValueError otherwise."""
        if self.x.dim() not in (2, 4) or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"ExampleSet needs x of shape (N,C,H,W) images or (N,L) token ids and N labels, "
                f"got {tuple(self.x.shape)} / {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        """Return the number of examples."""
        return int(self.y.shape[0])

    def subset(self, idx: torch.Tensor) -> ExampleSet:
        """Return the examples at ``idx`` (an index tensor or boolean mask) as a new set."""
        return ExampleSet(self.x[idx], self.y[idx])

    @property
    def shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) for images, (L,) for token ids."""
        return tuple(int(s) for s in self.x.shape[1:])


@dataclass(frozen=True)
class Dataset:
    """A train split (for clients and server calibration) and a held-out test split.

    Text datasets also carry the codec their token ids were made with.
    """

    name: str
    train: ExampleSet
    test: ExampleSet
    num_classes: int
    text: TextCodec | None = None
