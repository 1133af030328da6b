"""Classification metrics from predictions (pure, vectorised)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Arg-max predictions of ``model`` on ``x`` (on CPU)."""
    model.eval()
    out = [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Share of predictions equal to ``y`` (NaN when ``y`` is empty)."""
    return float((pred == y).float().mean()) if len(y) else float("nan")


def per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[float | None]:
    """Accuracy within each true class (None for a class absent from ``y``)."""
    correct = torch.bincount(y[pred == y], minlength=num_classes).float()
    total = torch.bincount(y, minlength=num_classes).float()
    return [float(c / t) if t > 0 else None for c, t in zip(correct.tolist(), total.tolist())]


def attack_success_rate(pred_triggered: torch.Tensor, y_true: torch.Tensor, target: int) -> float:
    """Fraction of triggered non-target inputs classified as the target (NaN when there are none).

    Only triggered inputs whose TRUE class is not the target count (inputs of the target class are
    excluded, unlike Hong et al.'s logged figure).
    """
    keep = y_true != target
    return float((pred_triggered[keep] == target).float().mean()) if keep.any() else float("nan")
