"""Protocol ``word_substitution`` (Neshaei et al. 2024; ../REFERENCE §2): text robustness per precision.

Adversarial accuracy of a text model in FP and at each quantized precision under word-substitution
attacks, on the same test examples. Two threat models per precision:
- transferred: the adversarial sentences crafted on the FP model, classified by the quantized one;
- direct: the attack run against the quantized model itself (its own queries), so a gain is not an
  artefact of attacking another model.
The attack is fl_sim's greedy embedding-neighbour substitution (fl_sim.evaluation.word_attack);
TextAttack's recipes (TextFooler, PWWS, PSO) run as well when asked for and available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from fl_sim.config.precision import FP32
from fl_sim.data.text import TextCodec
from fl_sim.errors import UserError
from fl_sim.evaluation.precisions import precision_context
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.evaluation.word_attack import (
    AttackOutcome,
    Scorer,
    WordAttackConfig,
    attack_one,
    neighbour_table,
    substitutable,
    word_positions,
)
from fl_sim.models.metrics import accuracy, predict

if TYPE_CHECKING:
    from fl_sim.models.text import TokenClassifier


@dataclass(frozen=True)
class Vocabulary:
    """What the attacker knows of the vocabulary: substitutable words, continuation pieces, the mask."""

    allowed: torch.Tensor
    continuation: torch.Tensor
    mask_id: int

    @classmethod
    def of(cls, codec: TextCodec) -> Vocabulary:
        """Build it from the codec's whole vocabulary (``##`` tokens are the continuation pieces)."""
        tokens = codec.tokens(range(codec.vocab_size()))
        mask = codec.mask_id
        return cls(substitutable(tokens), torch.tensor([t.startswith("##") for t in tokens]), mask)


def scorer(model: torch.nn.Module, device: torch.device, batch_size: int) -> Scorer:
    """Wrap ``model`` as a ``Scorer``: softmax probabilities on the CPU, in batches of ``batch_size``, in eval mode."""

    @torch.no_grad()
    def score(ids: torch.Tensor) -> torch.Tensor:
        model.eval()
        out = [model(ids[i : i + batch_size].to(device)).softmax(1).cpu() for i in range(0, len(ids), batch_size)]
        return torch.cat(out)

    return score


@dataclass(frozen=True)
class AttackRun:
    """One word attack over a set of examples: the adversarial ids, which clean predictions were right, each outcome."""

    adversarial: torch.Tensor
    correct: torch.Tensor  # the model's clean predictions were right
    outcomes: list[AttackOutcome | None]  # None where the clean prediction was already wrong

    def summary(self, y: torch.Tensor) -> dict[str, Any]:
        """Clean and adversarial accuracy over ``y``; success rate, queries and words changed over the attacked examples.

        Success rate and mean queries are over the examples that were attacked (classified right);
        words changed (count and share of the substitutable words) over the successful attacks.
        """
        done = [o for o in self.outcomes if o is not None]
        wins = [o for o in done if o.success]
        return {
            "clean_accuracy": int(self.correct.sum()) / len(y),
            "adversarial_accuracy": (int(self.correct.sum()) - len(wins)) / len(y),
            "attack_success_rate": len(wins) / len(done) if done else float("nan"),
            "mean_queries": sum(o.queries for o in done) / len(done) if done else 0.0,
            "mean_words_changed": sum(o.changed for o in wins) / len(wins) if wins else 0.0,
            "mean_share_changed": sum(o.changed / o.words for o in wins) / len(wins) if wins else 0.0,
        }


def run_attack(
    score: Scorer, x: torch.Tensor, y: torch.Tensor, vocab: Vocabulary, subs: dict[int, list[int]], cfg: WordAttackConfig
) -> AttackRun:
    """Attack every example that ``score`` classifies right (one query each to find out)."""
    correct = score(x).argmax(1) == y
    adv = x.clone()
    outcomes: list[AttackOutcome | None] = []
    for i in range(len(y)):
        if not correct[i]:
            outcomes.append(None)
            continue
        pos = word_positions(x[i], vocab.allowed, vocab.continuation)
        o = attack_one(x[i], int(y[i]), score, pos, subs, vocab.mask_id, cfg)
        adv[i] = o.ids
        outcomes.append(AttackOutcome(o.ids, o.success, o.queries + 1, o.changed, o.words))
    return AttackRun(adv, correct, outcomes)


def substitutes(model: torch.nn.Module, x: torch.Tensor, vocab: Vocabulary, cfg: WordAttackConfig) -> dict[int, list[int]]:
    """Embedding neighbours of every word that occurs in ``x`` (taken from the FP model's embeddings)."""
    words = torch.unique(x[vocab.allowed[x]])
    emb = cast("TokenClassifier", model).input_embeddings()  # a text model (fl_sim.models.text)
    return neighbour_table(emb, words, vocab.allowed, cfg.candidates, cfg.min_similarity)


@PROTOCOLS.register(
    "word_substitution",
    "text: adversarial accuracy under word-substitution attacks (fl_sim's greedy "
    "embedding-neighbour attack; TextAttack recipes where available), transferred from FP and direct, per precision",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Attack ``word_attack.examples`` random test sentences at every precision (text datasets only: else a UserError).

    Returns
    -------
    dict
        ``examples``, ``attack``, ``settings`` and ``rows``: per precision, ``transferred_accuracy`` and the direct
        attack's ``AttackRun.summary``; with ``recipes`` (``run_recipes``) where TextAttack recipes were asked for.
    """
    codec = ctx.data.text
    if codec is None:
        raise UserError("protocol word_substitution needs a text dataset (for images use protocol robustness)")
    ev = ctx.scenario.evaluation
    ws = ev.word_attack
    cfg = WordAttackConfig(ws.candidates, ws.min_similarity, ws.max_perturb)
    model, dev = ctx.model.to(ctx.device).eval(), ctx.device
    # a seeded random sample: test files are often sorted by label
    pick = torch.randperm(len(ctx.data.test), generator=ctx.generator("word_substitution"))[: ws.examples]
    x, y = ctx.data.test.x[pick], ctx.data.test.y[pick]
    vocab = Vocabulary.of(codec)
    subs = substitutes(model, x, vocab, cfg)
    fp = run_attack(scorer(model, dev, ev.batch_size), x, y, vocab, subs, cfg)
    rows = []
    for name in ev.precisions:
        with precision_context(model, name, ev, ctx.data.calibration, dev):
            direct = fp if name == FP32 else run_attack(scorer(model, dev, ev.batch_size), x, y, vocab, subs, cfg)
            transferred = accuracy(predict(model, fp.adversarial, ev.batch_size, dev), y)
        rows.append({"precision": name, "transferred_accuracy": transferred, **direct.summary(y)})
    out: dict[str, Any] = {"examples": len(y), "attack": "greedy_embedding", "settings": cfg.__dict__, "rows": rows}
    if ws.recipes:
        from fl_sim.evaluation.textattack_recipes import run_recipes

        out["recipes"] = run_recipes([r.value for r in ws.recipes], ctx, x, y)
    return out
