"""Backdoor triggers (pure functions on batches): a pixel patch on images, a phrase on text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fl_sim.data.text import insert_phrase

if TYPE_CHECKING:
    from fl_sim.config.schema import TriggerConfig
    from fl_sim.data.text import TextCodec


def apply_patch(x: torch.Tensor, size: int, margin: int = 1, value: float | None = None) -> torch.Tensor:
    """Set a ``size`` x ``size`` square at the bottom-right corner, ``margin`` pixels from the edge, to ``value``.

    ``value`` defaults to the batch's max value, as in Hong et al. 2021. Returns a copy.
    """
    if size < 1 or margin < 0 or size + margin > min(x.shape[-2:]):
        raise ValueError(f"trigger of size {size} with margin {margin} does not fit {tuple(x.shape[-2:])} images")
    out = x.clone()
    v = float(x.max()) if value is None else value
    h, w = x.shape[-2:]
    out[..., h - margin - size : h - margin, w - margin - size : w - margin] = v
    return out


def apply_trigger(x: torch.Tensor, trigger: TriggerConfig, text: TextCodec | None = None) -> torch.Tensor:
    """Apply the scenario's backdoor trigger to a batch: the patch on images, the phrase's tokens on token ids.

    On token ids the phrase goes right after [CLS] (``text`` names the tokenizer). Returns a copy.
    """
    if x.is_floating_point():
        return apply_patch(x, trigger.size, trigger.margin, trigger.value)
    if text is None:
        raise ValueError("a text trigger needs the dataset's text codec")
    return insert_phrase(x, text.phrase_ids(trigger.phrase), text.pad_id)
