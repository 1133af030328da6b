"""Screening of client replies before any strategy sees them (pure functions on tensors).

A reply is rejected if its arrays do not match the global model's names, shapes and dtypes, if
any value is NaN/Inf, or if its update norm exceeds ``max_norm_ratio`` times the round's median
update norm. Reported example counts above ``max_examples_ratio`` times the round's median count
are capped there (FedAvg must not trust them blindly).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import cast

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class GuardLimits:
    """The reply screen's bounds (``federation.guard``)."""

    max_norm_ratio: float = 100.0
    max_examples_ratio: float = 10.0


def _shape_problem(reference: State, state: State) -> str | None:
    """Why ``state``'s array names, shapes or dtypes do not match ``reference``'s, or None."""
    if set(state) != set(reference):
        missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        return f"array names differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for k, ref in reference.items():
        v = state[k]
        if v.shape != ref.shape:
            return f"array {k!r} has shape {tuple(v.shape)}, expected {tuple(ref.shape)}"
        if v.dtype != ref.dtype:
            return f"array {k!r} has dtype {v.dtype}, expected {ref.dtype}"
    return None


def _non_finite(state: State) -> str | None:
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    return None if bad is None else f"array {bad!r} holds NaN or Inf"


def structural_problem(reference: State, state: State) -> str | None:
    """Why ``state`` cannot be a model of ``reference``'s architecture (names, shapes, dtypes, finite values), or None."""
    return _shape_problem(reference, state) or _non_finite(state)


def update_norm(reference: State, state: State) -> float:
    """||state - reference||_2 over every array, accumulated in float64."""
    total = 0.0
    for k, ref in reference.items():
        v = state[k]
        diff = v - ref if v.is_floating_point() else v.double() - ref.double()
        total += float(torch.linalg.vector_norm(diff, dtype=torch.float64)) ** 2
    return math.sqrt(total)


def inspect_states(reference: State, states: list[State | None]) -> tuple[list[str | None], list[float | None]]:
    """Inspect every reply in one pass.

    Returns, per reply, why it cannot be a model of ``reference`` (or None) and its update norm.
    A finite reference and a finite float64 norm mean every value is finite, so the element-wise
    finiteness check runs only for a reply whose norm is not.
    """
    problems: list[str | None] = []
    norms: list[float | None] = []
    for s in states:
        problem = "arrays could not be decoded" if s is None else _shape_problem(reference, s)
        norm = update_norm(reference, s) if problem is None and s is not None else None
        if norm is not None and s is not None and not math.isfinite(norm):
            problem, norm = _non_finite(s) or "update norm is not finite", None
        problems.append(problem)
        norms.append(norm)
    return problems, norms


def screen(
    reference: State,
    states: list[State | None],
    counts: list[float],
    limits: GuardLimits,
    inspected: tuple[list[str | None], list[float | None]] | None = None,
) -> tuple[list[str | None], list[float]]:
    """Decide each reply: its rejection reason and its (capped) example count.

    A ``None`` state is one that could not even be decoded. ``inspected``: ``inspect_states``'s
    result, if the caller has it already.
    """
    problems, norms = inspected or inspect_states(reference, states)
    reasons: list[str | None] = []
    for problem, n in zip(problems, counts):
        if problem is not None:
            reasons.append(problem)
        elif not (isinstance(n, (int, float)) and n > 0 and n == n and n != float("inf")):
            reasons.append(f"invalid example count {n!r}")
        else:
            reasons.append(None)
    kept = [i for i, r in enumerate(reasons) if r is None]
    if kept:
        kept_norms = {i: cast(float, norms[i]) for i in kept}  # a reply without a problem has a finite norm
        med = statistics.median(kept_norms.values())
        for i, norm in kept_norms.items():
            if med > 0 and norm > limits.max_norm_ratio * med:
                reasons[i] = f"update norm {norm:.3g} exceeds {limits.max_norm_ratio:g} x the round median {med:.3g}"
    kept = [i for i, r in enumerate(reasons) if r is None]
    capped = list(counts)
    if kept:
        cap = limits.max_examples_ratio * statistics.median(counts[i] for i in kept)
        capped = [min(float(c), cap) if r is None else c for c, r in zip(counts, reasons)]
    return reasons, capped
