"""The simulation's ground truth about an attack round, kept out of the server's view.

A colluder's reply may carry, besides its update, the model the colluders aimed the aggregate at
(``ATTACK_TARGET``). The round loop strips that record from every reply before the adversary and the
strategy see them, and after aggregation measures the integer hit rate: the share of the
aggregate's quantized weights whose integer (under each quantizer the attack targets) equals the
target's. A real server never sees this record; it exists for the experimenter's history only.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from flwr.app import ArrayRecord, Message, RecordDict
from pydantic import BaseModel

from fl_sim.clients.repair import integer_hit_rate, quantized_weight_names, weight_quantizer
from fl_sim.clients.runtime import ATTACK_TARGET

__all__ = ["ATTACK_TARGET", "hit_rates", "strip_targets"]

State = dict[str, torch.Tensor]


def strip_targets(replies: list[Message]) -> list[State]:
    """Remove the harness-only record from every reply (in place); return the targets it held."""
    targets: list[State] = []
    for m in replies:
        if m.has_error() or ATTACK_TARGET not in m.content:
            continue
        targets.append(cast(ArrayRecord, m.content[ATTACK_TARGET]).to_torch_state_dict())
        m.content = RecordDict({k: v for k, v in m.content.items() if k != ATTACK_TARGET})
    return targets


def hit_rates(aggregate: State, targets: list[State], params: BaseModel, model: torch.nn.Module) -> dict[str, Any] | None:
    """Integer hit rate of the aggregate on the colluders' targets, per attacked bit width.

    {"int<b>": mean over the colluders' targets of the integer hit rate} for each bit width the
    attack trains against; None when there is no target or the attack has no quantizer.
    """
    if not targets or not hasattr(params, "specs"):
        return None
    names = quantized_weight_names(model)
    out = {}
    for spec in params.specs():
        q = weight_quantizer(spec)
        out[spec.name] = sum(integer_hit_rate(aggregate, t, names, q) for t in targets) / len(targets)
    return out
