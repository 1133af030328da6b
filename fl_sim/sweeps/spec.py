"""The sweep file, version 1: which scenarios, which grid of ``--set`` overrides, how to run and report.

Parsed once by ``load_sweep``; every failure is a one-line ``UserError`` naming the file and the key.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fl_sim.config.loader import _format_error, read_yaml
from fl_sim.config.schema import Strict
from fl_sim.errors import UserError

SCENARIO_AXIS = "scenario"
DEFAULT_METRICS = (
    "fp32.accuracy",
    "int8.accuracy",
    "int4.accuracy",
    "fp32.backdoor_asr",
    "int8.backdoor_asr",
    "int4.backdoor_asr",
    "detection.tpr",
    "detection.fpr",
)
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+")


class HeatmapSpec(Strict):
    """One heatmap: ``metric`` averaged over every other axis, ``rows`` x ``cols``."""

    rows: str
    cols: str
    metric: str
    title: str | None = None


def _check_key(key: str) -> str:
    """Return ``key`` if it is a dotted scenario key as ``--set`` accepts it; ValueError otherwise.

    "scenario" is refused: it is the scenario axis's name.
    """
    if key == SCENARIO_AXIS:
        raise ValueError(f"'{SCENARIO_AXIS}' is reserved: list scenario files under the top-level 'scenario' key")
    if not all(_KEY_PART.fullmatch(part) for part in key.split(".")):
        raise ValueError(f"{key!r} is not a dotted scenario key like 'strategy.name'")
    return key


def _canonical(value: Any) -> str:
    """Return a value's identity for duplicate checks: 1, 1.0 and true stay distinct."""
    return json.dumps(value, sort_keys=True, default=str)


class WorstCaseSpec(Strict):
    """Which axis holds the defenses (``per``) and which the attacks (``over``) for the worst-case column."""

    per: str = "strategy.name"
    over: str = SCENARIO_AXIS


class SweepSpec(Strict):
    """A whole sweep: the cartesian product of ``scenario`` files and ``grid`` values, each cell a run."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    scenario: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    parallel: int = Field(1, ge=1)
    cell_cpus: float = Field(1.0, gt=0)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    heatmaps: list[HeatmapSpec] = Field(default_factory=list)
    worst_case: WorstCaseSpec | None = Field(
        None, description="the worst-case column's axes (default: strategy.name over scenario, when both vary)"
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _SAFE_NAME.fullmatch(v) or v in {".", ".."}:
            raise ValueError(f"{v!r} must be a directory name: letters, digits, '-', '_', '.'")
        return v

    @field_validator("scenario", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("scenario")
    @classmethod
    def _unique_stems(cls, v: list[str]) -> list[str]:
        stems = [Path(s).stem for s in v]
        dup = next((s for s in stems if stems.count(s) > 1), None)
        if len(v) > 1 and dup is not None:
            raise ValueError(f"scenario files must have distinct names (stem {dup!r} repeats)")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            _check_key(key)
            if not values:
                raise ValueError(f"{key}: needs at least one value")
            seen = [_canonical(x) for x in values]
            dup = next((x for x, c in zip(values, seen) if seen.count(c) > 1), None)
            if len(set(seen)) != len(seen):
                raise ValueError(f"{key}: value {dup!r} is listed twice")
        return v

    @field_validator("set")
    @classmethod
    def _set_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            _check_key(key)
        return v

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: list[str]) -> list[str]:
        dup = next((m for m in v if v.count(m) > 1), None)
        if dup is not None:
            raise ValueError(f"{dup!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        both = [k for k in self.set if k in self.grid]
        if both:
            raise ValueError(f"'{both[0]}' is in both 'set' and 'grid': keep it in one")
        names = axes(self)
        for i, h in enumerate(self.heatmaps):
            for which in ("rows", "cols"):
                axis = getattr(h, which)
                if axis not in names:
                    raise ValueError(f"heatmaps.{i}.{which}: {axis!r} is not an axis (axes: {names})")
            if h.rows == h.cols:
                raise ValueError(f"heatmaps.{i}: rows and cols are both {h.rows!r}")
            if h.metric not in self.metrics:
                raise ValueError(f"heatmaps.{i}.metric: {h.metric!r} is not in 'metrics'")
        if self.worst_case is not None:
            for which in ("per", "over"):
                axis = getattr(self.worst_case, which)
                if axis not in names:
                    raise ValueError(f"worst_case.{which}: {axis!r} is not an axis (axes: {names})")
            if self.worst_case.per == self.worst_case.over:
                raise ValueError(f"worst_case: per and over are both {self.worst_case.per!r}")
        # Every axis holds at least one value (checked above), so the product has at least one cell.
        return self


def axes(spec: SweepSpec) -> list[str]:
    """Axis names in order: "scenario" first when there are several scenario files, then grid keys."""
    first = [SCENARIO_AXIS] if len(spec.scenario) > 1 else []
    return first + list(spec.grid)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; scenario paths come back absolute, resolved against its folder."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"sweep file not found: {p}")
    raw = read_yaml(p)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_format_error(e) for e in exc.errors())
        raise UserError(f"{p}: {problems}") from None
    base = p.absolute().parent
    resolved = [os.path.abspath(base / Path(s).expanduser()) for s in spec.scenario]
    missing = next((s for s in resolved if not Path(s).is_file()), None)
    if missing is not None:
        raise UserError(f"{p}: scenario: file not found: {missing}")
    return spec.model_copy(update={"scenario": resolved})
