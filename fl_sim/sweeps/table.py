"""One row per cell: its id, axis values, status and flattened metrics; all rows as one CSV file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from fl_sim.files import write_text_atomic
from fl_sim.sweeps.grid import Cell

_SECTIONS = ("detection", "timing")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _flat_section(prefix: str, section: Any) -> dict[str, float | None]:
    if not isinstance(section, dict):
        return {}
    return {f"{prefix}.{k}": _number(v) for k, v in section.items() if _scalar(v)}


def flatten_results(results: dict[str, Any]) -> dict[str, float | None]:
    """Flatten a run's results.json to ``{"int8.accuracy": 0.91, "detection.tpr": 1.0, "timing.total_s": 42.3}``.

    The ``mitigation`` and ``prerelease`` protocols' figures, when the run has them, come flattened too
    (``mitigation.efrap.flip=20%.int4.backdoor_asr``, ``prerelease.score``), and the last attack round's exact
    placement (``placement.landed``, omniscient ``qat_rounding``). Only scalars are kept (per-class lists are dropped); bools become 1.0 / 0.0; missing sections are skipped.
    """
    out: dict[str, float | None] = {}
    for precision, metrics in (results.get("final") or {}).items():
        out.update(_flat_section(precision, metrics))
    for name in _SECTIONS:
        out.update(_flat_section(name, results.get(name)))
    out.update(_flat_mitigation(results))
    out.update(_flat_section("prerelease", _protocol_result(results, "prerelease")))
    out.update(_flat_section("placement", _last_placement(results)))
    return out


def _last_placement(results: dict[str, Any]) -> dict[str, Any] | None:
    """The last attack round's exact placement (omniscient qat_rounding), if the run has one."""
    placed = [h["placement"] for h in results.get("history") or [] if isinstance(h, dict) and h.get("placement")]
    return placed[-1] if placed else None


def _protocol_result(results: dict[str, Any], name: str) -> Any:
    return ((results.get("evaluation") or {}).get(name) or {}).get("result")


def _flat_mitigation(results: dict[str, Any]) -> dict[str, float | None]:
    """``mitigation.as_deployed.int4.backdoor_asr``, ``mitigation.<method>.<variant>.<precision>.<metric>``, ``mitigation.<method>.seconds``."""
    r = _protocol_result(results, "mitigation")
    if not isinstance(r, dict) or "methods" not in r:
        return {}
    out: dict[str, float | None] = {}
    for p, metrics in r.get("as_deployed", {}).items():
        out.update(_flat_section(f"mitigation.as_deployed.{p}", metrics))
    for method, entry in r["methods"].items():
        out[f"mitigation.{method}.seconds"] = _number(entry.get("seconds"))
        for variant, by_precision in entry["rows"].items():
            for p, metrics in by_precision.items():
                out.update(_flat_section(f"mitigation.{method}.{variant}.{p}", metrics))
    return out


def _axis_text(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def cell_row(cell: Cell, status: str, results: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """Build the table row of one cell; lists and dicts among its axis values are written as JSON."""
    row: dict[str, Any] = {"cell": cell.id}
    row.update({axis: _axis_text(value) for axis, value in cell.axes.items()})
    row.update({"status": status, "error": error or ""})
    if results:
        row.update(flatten_results(results))
    return row


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Return the union of the rows' keys in first-seen order, "cell" first."""
    seen: dict[str, None] = {"cell": None}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the rows as CSV (floats at full precision, None as empty), atomically."""
    cols = columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_csv_text(row.get(c)) for c in cols])
    write_text_atomic(Path(path), buf.getvalue())
