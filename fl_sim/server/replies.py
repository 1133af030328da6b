"""Reading client replies defensively: a hostile or broken payload may be wrong in any way."""

from __future__ import annotations

import re
import statistics
from typing import cast

import torch
from flwr.app import ArrayRecord, Message

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^\s*([\w.]+(?:Error|Exception|Fault|Exit)): (.+)$")


def error_summary(reason: str, limit: int = 300) -> str:
    """One line for a failed client: the last ``SomeError: message`` line of the (Ray-wrapped) traceback.

    Falls back to the first line of the reason.
    """
    lines = _ANSI.sub("", reason).strip().splitlines()
    raised = [m.group(1).rsplit(".", 1)[-1] + ": " + m.group(2).strip() for ln in lines if (m := _RAISED.match(ln))]
    return (raised[-1] if raised else (lines[0] if lines else ""))[:limit]


def norm_ratios(pids: list[int], norms: list[float | None]) -> dict[int, float | None]:
    """Each well-formed reply's update norm over the round's median (what a norm screen sees)."""
    known = {p: n for p, n in zip(pids, norms) if n is not None}
    med = statistics.median(known.values()) if known else 0.0
    return {p: (n / med if med > 0 else None) for p, n in known.items()}


def decode_state(m: Message, key: str) -> dict[str, torch.Tensor] | None:
    """The reply's model state, or None when its arrays cannot be read."""
    try:
        return cast(ArrayRecord, m.content[key]).to_torch_state_dict()
    except Exception:  # a hostile or broken payload: anything can be wrong with it
        return None


def reply_count(m: Message, key: str) -> float:
    """The reply's reported example count; NaN when it is missing or not a number."""
    try:
        value = next(iter(m.content.metric_records.values()))[key]
        return float(value) if isinstance(value, (int, float)) else float("nan")
    except Exception:
        return float("nan")
