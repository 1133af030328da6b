"""Expand a sweep into cells: the cartesian product of its axes, each cell one ``fl-sim run``.

A cell carries its scenario file and the ``--set key=value`` strings that make it; values are
YAML-encoded so that ``fl_sim.config.loader.parse_overrides`` reads back exactly the value.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from fl_sim.sweeps.spec import SCENARIO_AXIS, SweepSpec, axes

MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: ``id`` names its directory, ``axes`` its coordinates in the grid."""

    id: str
    axes: dict[str, Any]
    scenario: str
    overrides: list[str]


def encode_value(value: Any) -> str:
    """Encode a value as one line of YAML (``krum``, ``'08'``, ``[8, 4]``, ``null``) for ``--set``."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf"), allow_unicode=True)
    text = text.rstrip("\n")
    return text.removesuffix("\n...").rstrip("\n")


def _id_text(value: Any) -> str:
    return value if isinstance(value, str) else encode_value(value)


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def make_id(raw: str, force_hash: bool = False) -> str:
    """Make a directory-safe id from ``raw``: unsafe characters -> ``-``.

    Long ids (or, with ``force_hash``, any id) are cut and end with a short sha1 of ``raw`` so they
    stay distinct.
    """
    safe = _UNSAFE.sub("-", raw)
    if len(safe) <= MAX_ID_LENGTH and not force_hash:
        return safe
    tag = _hash(raw)
    return f"{safe[: MAX_ID_LENGTH - len(tag) - 1]}-{tag}"


def _raw_id(stem: str, spec: SweepSpec, point: dict[str, Any]) -> str:
    parts = [stem] + [f"{key}={_id_text(point[key])}" for key in spec.grid]
    return "__".join(parts)


def _make_cell(spec: SweepSpec, point: dict[str, Any], stems: dict[str, str]) -> tuple[Cell, str]:
    """Build the cell at grid ``point`` (axis -> value), with its unsanitised id."""
    scenario = stems[point[SCENARIO_AXIS]] if SCENARIO_AXIS in point else spec.scenario[0]
    raw = _raw_id(Path(scenario).stem, spec, point)
    items = list(spec.set.items()) + [(key, point[key]) for key in spec.grid]
    overrides = [f"{key}={encode_value(value)}" for key, value in items]
    return Cell(id=make_id(raw), axes=dict(point), scenario=scenario, overrides=overrides), raw


def _distinct_ids(cells: list[tuple[Cell, str]]) -> list[Cell]:
    """Ids that collide once sanitised (``a b`` and ``a-b``) get a hash of their raw id."""
    counts = Counter(cell.id for cell, _ in cells)
    out = [replace(cell, id=make_id(raw, force_hash=True)) if counts[cell.id] > 1 else cell for cell, raw in cells]
    if len({cell.id for cell in out}) != len(out):
        raise ValueError("sweep cells do not have distinct ids")
    return out


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the sweep, scenario outermost, then grid keys in file order."""
    stems = {Path(s).stem: s for s in spec.scenario}
    choices = {SCENARIO_AXIS: list(stems), **spec.grid}
    names = axes(spec)
    points = [dict(zip(names, combo)) for combo in product(*(choices[n] for n in names))]
    return _distinct_ids([_make_cell(spec, point, stems) for point in points])
