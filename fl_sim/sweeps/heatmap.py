"""Heatmaps of one metric over two axes, averaged over every other axis and the seeds."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # no pyplot: a caller's backend (a notebook's) is left alone

from fl_sim.sweeps.spec import HeatmapSpec
from fl_sim.sweeps.summary import DONE, format_value, is_percent

Matrix = list[list[float | None]]


def label(value: Any) -> str:
    """Format an axis value as a tick label: strings as they are, anything else as JSON (``true``, ``null``)."""
    return value if isinstance(value, str) else json.dumps(value)


def heatmap_matrix(
    rows: list[dict[str, Any]], rows_axis: str, cols_axis: str, metric: str
) -> tuple[list[str], list[str], Matrix]:
    """Row labels, column labels and the metric's mean at each (row, col).

    Labels are in first-seen order over all rows, so failed points still show; each mean is over the
    done rows, None where there is no value.
    """
    row_labels = list(dict.fromkeys(label(r.get(rows_axis)) for r in rows))
    col_labels = list(dict.fromkeys(label(r.get(cols_axis)) for r in rows))
    sums: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        value = r.get(metric)
        if r.get("status") == DONE and value is not None and not np.isnan(value):
            sums.setdefault((label(r.get(rows_axis)), label(r.get(cols_axis))), []).append(float(value))
    matrix = [[_mean(sums.get((i, j))) for j in col_labels] for i in row_labels]
    return row_labels, col_labels, matrix


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _annotate(ax: Any, image: Any, matrix: Matrix, metric: str) -> None:
    """Write each value in its cell, light on dark colours; "n/a" where there is none."""
    for i, line in enumerate(matrix):
        for j, value in enumerate(line):
            if value is None:
                ax.text(j, i, "n/a", ha="center", va="center", color="dimgrey", fontsize=8)
                continue
            shade = image.norm(100 * value if is_percent(metric) else value)
            ax.text(
                j, i, format_value(metric, value), ha="center", va="center", fontsize=8, color="white" if shade < 0.5 else "black"
            )


def _save_png(fig: Any, path: Path) -> None:
    """Save to a temporary sibling, then rename over ``path``: readers never see half a PNG."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


WORST_LABEL = "worst case"


def with_worst(
    row_labels: list[str], col_labels: list[str], matrix: Matrix, worst: list[float | None], as_row: bool
) -> tuple[list[str], list[str], Matrix]:
    """The matrix with the worst case appended as a last row (``as_row``: one value per column) or a last column."""
    if as_row:
        return [*row_labels, WORST_LABEL], col_labels, [*matrix, list(worst)]
    return row_labels, [*col_labels, WORST_LABEL], [[*line, w] for line, w in zip(matrix, worst)]


def draw_heatmap(
    rows: list[dict[str, Any]], spec: HeatmapSpec, path: Path, worst: tuple[list[float | None], bool] | None = None
) -> None:
    """Draw ``spec.metric`` over ``spec.rows`` x ``spec.cols`` as an annotated PNG at ``path``.

    ``worst``: (values, as_row), the worst case per defense, drawn as a last row or column set apart
    by a white line.
    """
    row_labels, col_labels, matrix = heatmap_matrix(rows, spec.rows, spec.cols, spec.metric)
    if worst is not None:
        row_labels, col_labels, matrix = with_worst(row_labels, col_labels, matrix, *worst)
    percent = is_percent(spec.metric)
    scale = 100.0 if percent else 1.0
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else scale * v for v in line] for line in matrix]))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    fig = Figure(figsize=(max(4.0, 1.1 * len(col_labels) + 2), max(3.0, 0.6 * len(row_labels) + 1.5)))
    ax = fig.subplots()
    limits: dict[str, Any] = {"vmin": 0.0, "vmax": 100.0} if percent else {}
    image = ax.imshow(data, cmap=cmap, aspect="auto", **limits)
    _annotate(ax, image, matrix, spec.metric)
    if worst is not None:
        line = ax.axhline if worst[1] else ax.axvline
        line((len(row_labels) if worst[1] else len(col_labels)) - 1.5, color="white", linewidth=3)
    tilt: dict[str, Any] = {"rotation": 30, "ha": "right"} if max(map(len, col_labels)) > 6 else {}
    ax.set_xticks(range(len(col_labels)), col_labels, **tilt)
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(spec.cols)
    ax.set_ylabel(spec.rows)
    ax.set_title(spec.title or f"{spec.metric}: mean over other axes and seeds", fontsize=10)
    fig.colorbar(image, ax=ax, label=f"{spec.metric} (%)" if percent else spec.metric)
    fig.tight_layout()
    _save_png(fig, Path(path))
