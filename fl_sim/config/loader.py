"""Read a scenario: safe YAML -> dotted-path overrides -> one validation -> ``Scenario``.

Every failure is a ``UserError`` whose message is one line naming the file, key and problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from fl_sim.config.schema import Scenario
from fl_sim.errors import UserError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["a.b=3", "c=[8,4]"]`` -> ``[("a.b", 3), ("c", [8, 4])]``; values are parsed as YAML."""
    out: list[tuple[str, Any]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set expects dotted.key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise UserError(f"--set {key}: value {raw!r} is not valid YAML") from exc
        out.append((key, value))
    return out


def apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``dotted == "a.b.c"``, creating sections as needed."""
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _format_error(err: ErrorDetails) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and "." not in str(err["loc"][-1]):
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{loc}: {msg}{shown}" if loc else msg


def validate_dict(raw: dict[str, Any], origin: str) -> Scenario:
    """Validate a raw mapping; one-line UserError on failure."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_format_error(e) for e in exc.errors())
        raise UserError(f"{origin}: {problems}") from None
    except ValueError as exc:  # a component's own check raised outside pydantic
        raise UserError(f"{origin}: {exc}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping with the safe loader."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"scenario file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise UserError(f"{p}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(raw, dict):
        raise UserError(f"{p}: a scenario must be a YAML mapping, got {type(raw).__name__}")
    return raw


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file."""
    raw = read_yaml(path)
    for key, value in parse_overrides(overrides or []):
        apply_override(raw, key, value)
    return validate_dict(raw, str(path))


def with_absolute_data_path(s: Scenario) -> Scenario:
    """``s`` with ``data.path`` made absolute (client processes on other nodes run in other directories)."""
    if s.data.path is None or Path(s.data.path).is_absolute():
        return s
    data = s.data.model_copy(update={"path": str(Path(s.data.path).expanduser().resolve())})
    return s.model_copy(update={"data": data})
