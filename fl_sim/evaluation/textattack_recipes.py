"""TextAttack's word-substitution recipes (TextFooler, PWWS, PSO; Neshaei et al. 2024 used these).

They run against the FP model and each quantized precision, directly (the recipe queries that precision).

TextAttack is optional (``pip install textattack``) and its recipes fetch resources on first use
(counter-fitted embeddings and the Universal Sentence Encoder for TextFooler, WordNet for PWWS,
HowNet and a language model for PSO). Where the package or a resource cannot be had, the recipe's
entry says so (``available: false`` and the reason) instead of failing the evaluation.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from fl_sim.data.text import TextCodec
from fl_sim.evaluation.precisions import precision_context
from fl_sim.evaluation.protocols import EvalContext

RECIPES = {"textfooler": "TextFoolerJin2019", "pwws": "PWWSRen2019", "pso": "PSOZang2020"}


def _first_line(exc: BaseException) -> str:
    """Format the exception as its type and its first line with words in it (NLTK frames its messages in asterisks)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if any(c.isalpha() for c in ln)]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _wrapper(ctx: EvalContext) -> Any:
    from textattack.models.wrappers import ModelWrapper

    codec, model, dev, bs = cast(TextCodec, ctx.data.text), ctx.model, ctx.device, ctx.scenario.evaluation.batch_size

    # TextAttack calls it with a list of sentences, wants class scores
    class Wrapped(ModelWrapper):  # type: ignore[misc]  # textattack is untyped: ModelWrapper is Any
        def __init__(self) -> None:
            self.model = model

        @torch.no_grad()
        def __call__(self, text_input_list: list[str]) -> Any:
            ids = codec.encode(text_input_list)
            out = [model(ids[i : i + bs].to(dev)).softmax(1).cpu() for i in range(0, len(ids), bs)]
            return torch.cat(out).numpy()

    return Wrapped()


def _attack(recipe: str, ctx: EvalContext, texts: list[str], labels: list[int]) -> dict[str, Any]:
    import textattack
    from textattack import attack_recipes
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult

    attack = getattr(attack_recipes, RECIPES[recipe]).build(_wrapper(ctx))
    args = textattack.AttackArgs(num_examples=len(texts), silent=True, disable_stdout=True, random_seed=ctx.scenario.seed)
    results = textattack.Attacker(attack, textattack.datasets.Dataset(list(zip(texts, labels))), args).attack_dataset()
    attacked = [r for r in results if not isinstance(r, SkippedAttackResult)]
    wins = [r for r in attacked if isinstance(r, SuccessfulAttackResult)]
    return {
        "clean_accuracy": len(attacked) / len(results),
        "adversarial_accuracy": (len(attacked) - len(wins)) / len(results),
        "attack_success_rate": len(wins) / len(attacked) if attacked else float("nan"),
        "mean_queries": sum(r.num_queries for r in attacked) / len(attacked) if attacked else 0.0,
    }


def run_recipes(names: list[str], ctx: EvalContext, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """{recipe: {precision: figures}} or {recipe: {"available": False, "reason": ...}}.

    Parameters
    ----------
    names
        Recipe names, keys of ``RECIPES``.
    ctx
        The evaluation context; its dataset must be a text one.
    x, y
        Token ids of the examples to attack (decoded back to sentences for TextAttack) and their labels.

    Returns
    -------
    dict
        Per recipe: ``available``, and ``by_precision`` (clean and adversarial accuracy, attack success
        rate, mean queries per precision, each recipe built against the model at that precision), or
        ``reason`` where TextAttack or a resource is missing (after a failure mid-recipe, ``by_precision``
        still holds the precisions done before it).
    """
    try:
        import textattack  # noqa: F401
    except Exception as exc:  # not installed, an incompatible transformers, or NLTK data it fetches on import
        return {n: {"available": False, "reason": f"textattack cannot be imported ({_first_line(exc)})"} for n in names}
    codec = cast(TextCodec, ctx.data.text)  # a text dataset: protocol word_substitution checks before calling
    texts, labels = [codec.decode(row) for row in x], [int(v) for v in y]
    ev, out = ctx.scenario.evaluation, {}
    for name in names:
        per: dict[str, Any] = {}
        try:
            for prec in ev.precisions:
                with precision_context(ctx.model, prec, ev, ctx.data.calibration, ctx.device):
                    per[prec] = _attack(name, ctx, texts, labels)
            out[name] = {"available": True, "by_precision": per}
        except Exception as exc:  # a resource download that cannot happen here, an API change
            out[name] = {"available": False, "reason": _first_line(exc), "by_precision": per}
    return out
