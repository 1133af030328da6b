"""Model states <-> flat update vectors (pure functions).

Model states <-> flat update vectors (pure functions): what the adversary and the tensor
aggregators work on.
"""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


def float_keys(state: State) -> list[str]:
    """The floating-point entries of a state: the ones updates are made of (int buffers are not)."""
    return [k for k, v in state.items() if v.is_floating_point()]


def flatten_update(state: State, reference: State, keys: list[str], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The update ``state - reference`` over ``keys``, flattened into one vector of ``dtype``."""
    return torch.cat([(state[k].to(dtype) - reference[k].to(dtype)).reshape(-1) for k in keys])


def unflatten_update(vec: torch.Tensor, reference: State, keys: list[str]) -> State:
    """``reference + vec`` as a model state (keys outside ``keys`` copied from ``reference``), added in ``vec``'s dtype."""
    out = {k: v.clone() for k, v in reference.items()}
    at = 0
    for k in keys:
        n = reference[k].numel()
        out[k] = (reference[k].to(vec.dtype) + vec[at : at + n].reshape(reference[k].shape)).to(reference[k].dtype)
        at += n
    return out
