"""The public aggregation rules as plain functions, for adaptive attackers (``attack.params.against``).

Kerckhoffs: the colluders know the server's rule and its pre-aggregation steps by name, and run their
own copy of them on the updates they know or estimate, to choose the update that moves the result the
most. Each rule file in ``strategies/`` registers its replica here: a function of the (n, d) float64
updates, the (n,) example counts and the number f of colluders the rule assumes, returning the (d,)
aggregate. A replica matches the rule where the rule is a function of the round's updates alone;
where the rule also uses server-side state (centered clipping's previous aggregate, MoNNA's server
update), the replica says what it assumes in its own docstring.

A rule spec names the pre-aggregation steps and the rule joined by '+': ``"nnm+krum"``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fl_sim.preaggregators import PREAGGREGATORS, chain
from fl_sim.registry import Registry

Replica = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
REPLICAS: Registry[Replica] = Registry("rule replica")


def split_spec(spec: str) -> tuple[list[str], str]:
    """``"nnm+bucketing+krum"`` -> (["nnm", "bucketing"], "krum"); ValueError on an empty part."""
    parts = [p.strip() for p in spec.split("+")]
    if not all(parts):
        raise ValueError(f"{spec!r} is not a rule spec like 'krum' or 'nnm+krum'")
    return parts[:-1], parts[-1]


def check_spec(spec: str) -> None:
    """ValueError naming the unknown step or rule of ``spec`` (the strategies must be registered)."""
    pre, rule = split_spec(spec)
    for name in pre:
        PREAGGREGATORS.get(name)
    if rule not in REPLICAS:
        known = ", ".join(REPLICAS.names())
        raise ValueError(f"no replica of rule {rule!r} for an adaptive attack (rules with one: {known})")


def simulate(
    spec: str, updates: torch.Tensor, f: int, generator: torch.Generator, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """The (d,) aggregate that rule ``spec`` would return on (n, d) ``updates`` with f colluders.

    ``counts``: the (n,) example counts (None: equal). Pre-aggregation steps run with their default
    parameters and the same f; randomised steps (bucketing) draw from ``generator``.
    """
    pre, rule = split_spec(spec)
    x = updates.double()
    if counts is None:
        counts = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    counts = counts.double().to(x.device)
    if pre:
        steps = [cls(cls.Params(), f if cls.uses_f() else None) for cls in map(PREAGGREGATORS.get, pre)]
        mixed = chain(steps, x, counts, generator)
        x, counts = mixed.updates.double(), mixed.weights
    return REPLICAS.get(rule)(x, counts, f)


def has_replica(spec: str) -> bool:
    """Whether every step and the rule of ``spec`` have a replica (``simulate`` can run it)."""
    try:
        check_spec(spec)
    except (KeyError, ValueError):
        return False
    return True
