"""Mean and spread over replicates (seeds) per grid point, and the sweep's Markdown summary."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from fl_sim.sweeps.spec import SweepSpec
from fl_sim.sweeps.spec import axes as sweep_axes

DONE = "done"
FAILED = "failed"
_PERCENT_SUFFIXES = ("accuracy", "asr", "tpr", "fpr", "success")


def is_percent(metric: str) -> bool:
    """Rates (accuracy, ASR, TPR, FPR, success) are shown as percentages."""
    return metric.endswith(_PERCENT_SUFFIXES)


def _sig3(value: float) -> str:
    """Three significant figures, without an exponent for everyday magnitudes."""
    if value == 0 or not math.isfinite(value) or not 1e-3 <= abs(value) < 1e6:
        return f"{value:.3g}"
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):.{max(decimals, 0)}f}"


def format_value(metric: str, value: float) -> str:
    """``0.9123`` -> ``91.2`` for rates; three significant figures otherwise."""
    return f"{100 * value:.1f}" if is_percent(metric) else _sig3(value)


def _values(rows: list[dict[str, Any]], metric: str) -> list[float]:
    """Return the metric's values in ``rows``; None (not measured) and NaN are left out."""
    raw = (row.get(metric) for row in rows)
    return [float(v) for v in raw if v is not None and not math.isnan(float(v))]


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean, sample std (ddof=1) and count; std is None for one value (undefined), both None for none."""
    n = len(values)
    mean = statistics.fmean(values) if n else None
    std = statistics.stdev(values) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def summarize(rows: list[dict[str, Any]], axes: list[str], metrics: list[str], replicate: str = "seed") -> list[dict[str, Any]]:
    """Summarize the "done" rows: one dict per grid point (all axes but ``replicate``), in first-seen order.

    Each dict holds the axis values, then ``{metric: {"mean", "std", "n"}}``. Without a ``replicate``
    axis each grid point is its own group; std is None when fewer than two values.
    """
    keep = [a for a in axes if a != replicate]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == DONE:
            groups.setdefault(tuple(row.get(a) for a in keep), []).append(row)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(keep, key))
        entry.update({m: _stats(_values(members, m)) for m in metrics})
        out.append(entry)
    return out


def _cell_text(metric: str, stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "n/a"
    spread = "" if stats["std"] is None else f" ± {format_value(metric, stats['std'])}"
    return f"{format_value(metric, stats['mean'])}{spread} ({stats['n']})"


def _md(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _status_line(rows: list[dict[str, Any]]) -> str:
    counts = Counter(row.get("status") for row in rows)
    others = sorted(str(s) for s in counts if s not in (DONE, FAILED))
    parts = [f"{counts[DONE]} done", f"{counts[FAILED]} failed"] + [f"{counts[s]} {s}" for s in others]
    return f"{len(rows)} cells: " + ", ".join(parts) + "."


def _table(spec: SweepSpec, summary: list[dict[str, Any]], replicate: str) -> list[str]:
    keep = [a for a in sweep_axes(spec) if a != replicate]
    heads = keep + [f"{m} (%)" if is_percent(m) else m for m in spec.metrics]
    lines = ["| " + " | ".join(_md(h) for h in heads) + " |", "|" + "---|" * len(heads)]
    for entry in summary:
        cells = [_md(entry.get(a)) for a in keep] + [_cell_text(m, entry[m]) for m in spec.metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _failed(rows: list[dict[str, Any]]) -> list[str]:
    failed = [row for row in rows if row.get("status") == FAILED]
    if not failed:
        return []
    return ["", "## Failed cells", ""] + [f"- `{row['cell']}`: {_md(row.get('error') or '')}" for row in failed]


def render_markdown(
    spec: SweepSpec,
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    heatmap_files: list[str],
    replicate: str = "seed",
    sections: list[str] | None = None,
) -> str:
    """Render the sweep's summary.md.

    Cell counts, one table line per grid point (``mean ± std (n)`` over seeds), extra ``sections``
    (Markdown lines, e.g. the worst case per defense), failed cells with their error, and the heatmaps.
    """
    lines = [f"# Sweep {spec.name}", "", _status_line(rows), ""]
    lines.append(f"Each entry: mean ± sample std over {replicate}s (number of runs with a value).")
    lines += ["", *_table(spec, summary, replicate)]
    lines += sections or []
    lines += _failed(rows)
    if heatmap_files:
        lines += ["", "## Heatmaps", ""] + [f"![{name}]({name})" for name in heatmap_files]
    return "\n".join(lines) + "\n"
