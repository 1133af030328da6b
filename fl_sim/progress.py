"""Progress bars for long steps (attack training, evaluation protocols, sweep cells), on stderr.

Shown only when stderr is a terminal (tqdm's own test), so logs, CI and Ray workers stay quiet;
``FL_SIM_PROGRESS=1`` forces them on, ``FL_SIM_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
ENV = "FL_SIM_PROGRESS"


def disabled() -> bool | None:
    """Tqdm's ``disable``: True/False when ``FL_SIM_PROGRESS`` says so, else None (on only for a terminal)."""
    flag = os.environ.get(ENV, "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return True
    if flag in ("1", "true", "yes", "on"):
        return False
    return None


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``items`` with a progress bar named ``desc`` (removed when done)."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr, disable=disabled()))


def counter(total: int, desc: str, unit: str = "it") -> tqdm[Any]:
    """A bar advanced by hand (``.update(1)``); close it when done."""
    bar: tqdm[Any] = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, disable=disabled())
    return bar
