"""Hostile payloads, as a registered behaviour.

The client trains honestly, then corrupts its reply (non-finite values, wrong shapes or dtypes, a
missing array, a huge norm, a lying example count). It exists to test that the server neutralises
such replies under every strategy.
"""

from __future__ import annotations

from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict

from fl_sim.clients.honest import Honest
from fl_sim.clients.registry import register_attack
from fl_sim.config.schema import AttackConfig, Collusion


class PayloadKind(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """How the reply is corrupted (see ``corrupt``)."""

    NAN = "nan"
    INF = "inf"
    WRONG_SHAPE = "wrong_shape"
    WRONG_DTYPE = "wrong_dtype"
    MISSING_ARRAY = "missing_array"
    HUGE_NORM = "huge_norm"
    LYING_COUNT = "lying_count"


class HostileParams(BaseModel):
    """Parameters of ``hostile_payload``: the kind of corruption."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: PayloadKind = PayloadKind.NAN


def corrupt(
    state: dict[str, torch.Tensor], start: dict[str, torch.Tensor], num_examples: int, kind: PayloadKind
) -> tuple[dict[str, torch.Tensor], int]:
    """The corrupted (state, example count) for ``kind`` (pure)."""
    out = {k: v.clone() for k, v in state.items()}
    first = next(iter(out))
    if kind is PayloadKind.NAN:
        out[first].view(-1)[0] = float("nan")
    elif kind is PayloadKind.INF:
        out[first].view(-1)[-1] = float("inf")
    elif kind is PayloadKind.WRONG_SHAPE:
        out[first] = out[first][:-1]
    elif kind is PayloadKind.WRONG_DTYPE:
        out[first] = out[first].double()
    elif kind is PayloadKind.MISSING_ARRAY:
        del out[first]
    elif kind is PayloadKind.HUGE_NORM:
        out = {k: start[k] + 1e6 * (v - start[k]) for k, v in out.items()}
    elif kind is PayloadKind.LYING_COUNT:
        num_examples *= 1000
    return out, num_examples


@register_attack("hostile_payload", "honest training, then a corrupted reply (NaN/Inf, shape, dtype, norm, example count)")
class HostilePayload(Honest):
    """Trains honestly, then sends the reply corrupted as ``params.kind`` says."""

    Params = HostileParams
    params: HostileParams

    @classmethod
    def check(cls, attack: AttackConfig) -> None:
        """Reject omniscient collusion and stealth, under which the adversary would rewrite the payloads."""
        if attack.collusion is Collusion.OMNISCIENT or attack.stealth.enabled:
            raise ValueError(
                "hostile_payload probes the server with malformed replies: it takes neither omniscient "
                "collusion nor stealth (the adversary would rewrite the payloads)"
            )

    def tamper(
        self, state: dict[str, torch.Tensor], start: dict[str, torch.Tensor], num_examples: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        """The trained state and example count, corrupted (``corrupt``)."""
        return corrupt(state, start, num_examples, self.params.kind)
