"""Screening of client replies before any strategy sees them (pure functions on tensors).

A reply is rejected if its arrays do not match the global model's names, shapes and dtypes, if
any value is NaN/Inf, or if its update norm exceeds ``max_norm_ratio`` times the round's median
update norm. Reported example counts above ``max_examples_ratio`` times the round's median count
are capped there (FedAvg must not trust them blindly)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class GuardLimits:
    max_norm_ratio: float = 100.0
    max_examples_ratio: float = 10.0


def structural_problem(reference: State, state: State) -> str | None:
    """Why ``state`` cannot be a model of ``reference``'s architecture, or None."""
    if set(state) != set(reference):
        missing, extra = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
        return f"array names differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for k, ref in reference.items():
        v = state[k]
        if v.shape != ref.shape:
            return f"array {k!r} has shape {tuple(v.shape)}, expected {tuple(ref.shape)}"
        if v.dtype != ref.dtype:
            return f"array {k!r} has dtype {v.dtype}, expected {ref.dtype}"
        if not torch.isfinite(v).all():
            return f"array {k!r} holds NaN or Inf"
    return None


def update_norm(reference: State, state: State) -> float:
    return float(torch.sqrt(sum(((state[k].double() - reference[k].double()) ** 2).sum() for k in reference)))


def update_norms(reference: State, states: list[State | None]) -> list[float | None]:
    """Each state's update norm, None for one that is not a model of ``reference``'s architecture."""
    return [update_norm(reference, s) if s is not None and structural_problem(reference, s) is None else None
            for s in states]


def screen(reference: State, states: list[State | None], counts: list[float], limits: GuardLimits,
           norms: list[float | None] | None = None) -> tuple[list[str | None], list[float]]:
    """Per reply: the rejection reason (None = kept), and the (possibly capped) example counts.
    A ``None`` state is one that could not even be decoded. ``norms``: the update norms if the
    caller has them already (``update_norms``)."""
    reasons: list[str | None] = []
    for s, n in zip(states, counts):
        if s is None:
            reasons.append("arrays could not be decoded")
        elif not (isinstance(n, (int, float)) and n > 0 and n == n and n != float("inf")):
            reasons.append(f"invalid example count {n!r}")
        else:
            reasons.append(structural_problem(reference, s))
    kept = [i for i, r in enumerate(reasons) if r is None]
    if kept:
        known = norms or [None] * len(states)
        by_id = {i: known[i] if known[i] is not None else update_norm(reference, states[i]) for i in kept}
        med = statistics.median(by_id.values())
        for i, nrm in by_id.items():
            if med > 0 and nrm > limits.max_norm_ratio * med:
                reasons[i] = f"update norm {nrm:.3g} exceeds {limits.max_norm_ratio:g} x the round median {med:.3g}"
    kept = [i for i, r in enumerate(reasons) if r is None]
    capped = list(counts)
    if kept:
        cap = limits.max_examples_ratio * statistics.median(counts[i] for i in kept)
        capped = [min(float(c), cap) if r is None else c for c, r in zip(counts, reasons)]
    return reasons, capped
