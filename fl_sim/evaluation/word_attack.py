"""A word-substitution attack that needs no download.

Greedy word-importance ranking (the first step of TextFooler, Jin et al. 2020: the drop in the true
class's probability when a word is masked), then, word by word in that order, substitutes from the
attacked model's own embedding neighbours (cosine similarity of input word embeddings, the resource
TextFooler takes from counter-fitted vectors). A word is replaced by the candidate that flips the prediction (the most
similar one that does), else by the one that lowers the true class's probability most; the attack
stops at a flip or when ``max_perturb`` of the words are changed.

It works on token ids: a "word" is a whole-word token (alphabetic, not a continuation piece, not a
stop word, not followed by a continuation piece), so every substitution keeps the sequence length.
The model is queried through ``Scorer`` (probabilities for a batch of sequences), so the same
attack runs against the FP model and against any quantized twin; every example that is scored
counts as one query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (B, L) ids -> (B, C) probabilities

# A compact English stop-word list (function words carry little meaning and are not substituted).
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves s t don nt re ve ll m d""".split()
)
_WORD = re.compile(r"^[a-z]{2,}$")


@dataclass(frozen=True)
class WordAttackConfig:
    """Settings of the greedy embedding-neighbour attack (validated on construction)."""

    candidates: int = 15  # substitutes per word (nearest embedding neighbours)
    min_similarity: float = 0.5  # cosine similarity of a substitute's embedding to the word's
    max_perturb: float = 0.25  # at most this share of an example's words is changed

    def __post_init__(self) -> None:
        """Reject out-of-range settings with a ValueError."""
        if self.candidates < 1 or not -1.0 <= self.min_similarity < 1.0 or not 0.0 < self.max_perturb <= 1.0:
            raise ValueError(f"bad word-attack settings: {self}")


@dataclass(frozen=True)
class AttackOutcome:
    """One attacked example.

    The adversarial ids, whether the prediction was flipped, queries spent and the number of words
    changed (of ``words`` substitutable ones).
    """

    ids: torch.Tensor
    success: bool
    queries: int
    changed: int
    words: int


def substitutable(tokens: Sequence[str]) -> torch.Tensor:
    """(V,) bool: the vocabulary entries that are whole words fit to substitute or be substituted."""
    return torch.tensor([bool(_WORD.match(t)) and t not in STOP_WORDS for t in tokens])


def word_positions(ids: torch.Tensor, allowed: torch.Tensor, continuation: torch.Tensor) -> list[int]:
    """Positions in one sequence holding a substitutable whole word (not followed by a ``##`` piece)."""
    nxt = torch.cat([ids[1:], ids[-1:]])
    ok = allowed[ids] & ~continuation[nxt]
    ok[-1] = False
    return torch.nonzero(ok).flatten().tolist()


def neighbour_table(
    emb: torch.Tensor, words: torch.Tensor, allowed: torch.Tensor, k: int, min_sim: float
) -> dict[int, list[int]]:
    """For each token id in ``words``: up to ``k`` allowed tokens nearest by cosine similarity of ``emb`` rows.

    Most similar first, at least ``min_sim``, never the word itself.

    Parameters
    ----------
    emb
        (V, D) input word embeddings.
    words
        (W,) token ids to find substitutes for.
    allowed
        (V,) bool: the tokens that may be a substitute (see ``substitutable``).
    k
        Neighbours looked at per word (those under ``min_sim`` are then dropped).
    min_sim
        Least cosine similarity of a substitute.

    Returns
    -------
    dict[int, list[int]]
        Token id -> its substitutes' token ids.
    """
    e = F.normalize(emb.detach().float(), dim=1)
    sims = e[words] @ e.T  # (W, V)
    sims[:, ~allowed] = -2.0
    sims[torch.arange(len(words)), words] = -2.0
    top, idx = sims.topk(k, dim=1)
    return {int(w): [int(i) for i, s in zip(idx[r], top[r]) if s >= min_sim] for r, w in enumerate(words.tolist())}


def attack_one(
    ids: torch.Tensor,
    label: int,
    score: Scorer,
    positions: list[int],
    subs: dict[int, list[int]],
    mask_id: int,
    cfg: WordAttackConfig,
) -> AttackOutcome:
    """Greedy word-importance ranking + embedding-neighbour substitution on one correctly classified sequence.

    The caller checks that the prediction is right first, with one query (not counted here).

    Parameters
    ----------
    ids
        (L,) token ids of the sequence.
    label
        Its true class.
    score
        The attacked model: (B, L) ids -> (B, C) probabilities; every scored row counts as a query.
    positions
        Substitutable word positions in ``ids`` (``word_positions``).
    subs
        Token id -> candidate substitutes, most similar first (``neighbour_table``).
    mask_id
        Token that masks a word when ranking word importance.
    cfg
        Attack settings (``max_perturb`` bounds the words changed).

    Returns
    -------
    AttackOutcome
        The adversarial ids and the attack's figures.
    """
    queries = 0
    if not positions:
        return AttackOutcome(ids, False, queries, 0, 0)
    masked = ids.repeat(len(positions), 1)
    masked[torch.arange(len(positions)), torch.tensor(positions)] = mask_id
    base = score(ids.unsqueeze(0))[0, label]
    drops = base - score(masked)[:, label]
    queries += 1 + len(positions)
    order = [positions[i] for i in drops.argsort(descending=True).tolist()]
    budget = max(1, int(cfg.max_perturb * len(positions)))
    cur, cur_p, changed = ids.clone(), float(base), 0
    for pos in order:
        if changed == budget:
            break
        cands = subs.get(int(ids[pos]), [])
        if not cands:
            continue
        trial = cur.repeat(len(cands), 1)
        trial[:, pos] = torch.tensor(cands, dtype=ids.dtype)
        probs = score(trial)
        queries += len(cands)
        flipped = torch.nonzero(probs.argmax(1) != label).flatten()
        if len(flipped):
            cur[pos] = cands[int(flipped[0])]
            return AttackOutcome(cur, True, queries, changed + 1, len(positions))
        best = int(probs[:, label].argmin())
        if float(probs[best, label]) < cur_p:
            cur[pos], cur_p, changed = cands[best], float(probs[best, label]), changed + 1
    return AttackOutcome(cur, False, queries, changed, len(positions))
