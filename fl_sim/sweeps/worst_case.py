"""The worst case of each defense over the attacks of a sweep (ByzFL's way of comparing defenses).

For each value of the ``per`` axis (the defense, ``strategy.name``), a metric's worst value over the
values of the ``over`` axis (the attacks, the scenario files), each point first averaged over every
other axis and the seeds: the lowest accuracy or TPR, the highest ASR, FPR or attack success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fl_sim.sweeps.heatmap import heatmap_matrix, label
from fl_sim.sweeps.spec import SCENARIO_AXIS, SweepSpec
from fl_sim.sweeps.spec import axes as sweep_axes
from fl_sim.sweeps.summary import format_value, is_percent

Direction = Literal["min", "max"]
_LOW_IS_WORSE = ("accuracy", "tpr")
_HIGH_IS_WORSE = ("asr", "fpr", "success")
DEFENSE_AXIS = "strategy.name"


def worst_direction(metric: str) -> Direction | None:
    """Which way is worse for the defender: "min" for accuracy and TPR, "max" for ASR, FPR and attack success."""
    if metric.endswith(_LOW_IS_WORSE):
        return "min"
    if metric.endswith(_HIGH_IS_WORSE):
        return "max"
    return None


@dataclass(frozen=True)
class Worst:
    """One defense's worst value of a metric and the attack that gave it (None: no value)."""

    per: str
    value: float | None
    at: str | None


def worst_axes(spec: SweepSpec) -> tuple[str, str] | None:
    """(per, over) for the sweep's worst-case column: the spec's ``worst_case``, else (strategy.name, scenario) when both vary."""
    if spec.worst_case is not None:
        return spec.worst_case.per, spec.worst_case.over
    names = sweep_axes(spec)
    return (DEFENSE_AXIS, SCENARIO_AXIS) if DEFENSE_AXIS in names and SCENARIO_AXIS in names else None


def worst_case(rows: list[dict[str, Any]], per: str, over: str, metric: str) -> list[Worst]:
    """Each ``per`` value's worst ``metric`` over the ``over`` values, in first-seen order; [] without a direction."""
    direction = worst_direction(metric)
    if direction is None:
        return []
    over_labels, per_labels, matrix = heatmap_matrix(rows, over, per, metric)
    out = []
    for j, name in enumerate(per_labels):
        column = [(v, over_labels[i]) for i, line in enumerate(matrix) if (v := line[j]) is not None]
        if not column:
            out.append(Worst(name, None, None))
            continue
        value, at = (min if direction == "min" else max)(column, key=lambda c: c[0])
        out.append(Worst(name, value, at))
    return out


def worst_row(rows: list[dict[str, Any]], per: str, over: str, metric: str, per_labels: list[str]) -> list[float | None]:
    """The worst values in the order of ``per_labels`` (for a heatmap's extra row or column)."""
    by_name = {w.per: w.value for w in worst_case(rows, per, over, metric)}
    return [by_name.get(label(p)) for p in per_labels]


def worst_markdown(rows: list[dict[str, Any]], per: str, over: str, metrics: list[str]) -> list[str]:
    """The summary's section: one line per defense, its worst value of each metric and where (attack)."""
    measured = [m for m in metrics if worst_direction(m) is not None]
    if not measured:
        return []
    tables = {m: worst_case(rows, per, over, m) for m in measured}
    names = [w.per for w in tables[measured[0]]]
    heads = [per] + [f"worst {m} (%)" if is_percent(m) else f"worst {m}" for m in measured]
    lines = ["", f"## Worst case per {per} over {over}", ""]
    lines.append(f"Lowest accuracy / TPR, highest ASR / FPR over the {over} values (each a mean over seeds), and where.")
    lines += ["", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for i, name in enumerate(names):
        cells = [name]
        for m in measured:
            w = tables[m][i]
            cells.append("n/a" if w.value is None else f"{format_value(m, w.value)} ({w.at})")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines
