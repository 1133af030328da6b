"""In-memory labelled image sets: float images in [0, 1] of shape (N, C, H, W), int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSet:
    """A labelled image set held as two tensors."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"ImageSet needs x of shape (N,C,H,W) and N labels, got {tuple(self.x.shape)} / {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: torch.Tensor) -> "ImageSet":
        return ImageSet(self.x[idx], self.y[idx])

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)


@dataclass(frozen=True)
class Dataset:
    """A train split (for clients and server calibration) and a held-out test split."""

    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int
