"""A sweep end to end: validate, run, report.

Validate every cell before running any, run the unfinished ones on Ray, then gather every cell's
final metrics into one table, heatmaps and a Markdown summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fl_sim.errors import UserError
from fl_sim.files import write_json_atomic, write_text_atomic
from fl_sim.progress import counter
from fl_sim.sweeps.execute import RESULTS, CellOutcome, cell_dir, is_finished, run_cells
from fl_sim.sweeps.grid import Cell, expand
from fl_sim.sweeps.heatmap import draw_heatmap, heatmap_matrix
from fl_sim.sweeps.spec import HeatmapSpec, SweepSpec, axes
from fl_sim.sweeps.summary import DONE, FAILED, render_markdown, summarize
from fl_sim.sweeps.table import cell_row, write_table
from fl_sim.sweeps.worst_case import worst_axes, worst_direction, worst_markdown, worst_row

TABLE = "results.csv"
SUMMARY = "summary.md"
NOT_RUN = "not run"


def validate_cells(cells: list[Cell], cell_cpus: float) -> dict[str, dict[str, Any]]:
    """Load every cell's scenario with its overrides and build its strategy.

    A bad key or value stops the sweep before any cell runs, naming the cell. Returns each cell's
    resolved scenario (as its run will record it).
    """
    from fl_sim.wiring import load

    resolved: dict[str, dict[str, Any]] = {}
    for cell in cells:
        try:
            s = load(cell.scenario, cell.overrides).scenario
        except (UserError, ValueError) as exc:
            raise UserError(f"cell {cell.id}: {exc}") from None
        need = s.federation.client_resources.num_cpus
        if need > cell_cpus:
            raise UserError(f"cell {cell.id}: its clients need {need:g} CPUs each, more than cell_cpus {cell_cpus:g}")
        resolved[cell.id] = s.model_dump(mode="json")
    return resolved


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """Return the dotted key of the first place where ``a`` and ``b`` differ, or None if they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            where = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if where is not None:
                return where
        return None
    return None if a == b else (prefix.rstrip(".") or "(the whole scenario)")


def _without_protocol_keys(scenario: dict[str, Any]) -> dict[str, Any]:
    from fl_sim.reevaluate import PROTOCOL_KEYS

    evaluation = {k: v for k, v in scenario.get("evaluation", {}).items() if k not in PROTOCOL_KEYS}
    return {**scenario, "evaluation": evaluation}


def check_existing(cells: list[Cell], out: Path, resolved: dict[str, dict[str, Any]]) -> list[Cell]:
    """Check that each cell's existing run (finished or interrupted) is of the scenario the sweep now asks for.

    Otherwise its results would be reported as this sweep's: a difference raises UserError. The one
    exception: a run that differs only in its evaluation protocols or their settings (its ``final``
    still holds). If finished, it is returned, to be brought up to date on its saved model without
    retraining; if interrupted, it resumes as it was staged and is brought up to date once finished.
    """
    from fl_sim.runner import SCENARIO_FILE, staging_dir

    stale = []
    for cell in cells:
        run_dir = cell_dir(out, cell)
        for path, key in ((run_dir / RESULTS, "scenario"), (staging_dir(run_dir) / SCENARIO_FILE, None)):
            if not path.is_file():
                continue
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored = stored[key] if key else stored
            where = first_difference(stored, resolved[cell.id])
            if where is None:
                continue
            if first_difference(_without_protocol_keys(stored), _without_protocol_keys(resolved[cell.id])) is None:
                if key:  # finished: re-evaluate; interrupted: it resumes as staged, and is re-evaluated once finished
                    stale.append(cell)
                continue
            raise UserError(
                f"cell {cell.id} in {out} was run with a different scenario ({where} differs): "
                "use another --out, or delete that cell's directory to rerun it"
            )
    return stale


def bring_up_to_date(cells: list[Cell], out: Path, resolved: dict[str, dict[str, Any]], progress: Callable[[str], None]) -> None:
    """Run, on each finished cell's saved model, the protocols the sweep now asks for and it lacks."""
    from fl_sim.reevaluate import bring_up_to_date as update_run

    for i, cell in enumerate(cells, 1):
        names = update_run(cell_dir(out, cell), resolved[cell.id]["evaluation"])
        progress(f"[re-evaluated {i}/{len(cells)}] {cell.id}: {', '.join(names) or 'settings recorded'} (no retraining)")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def gather_rows(cells: list[Cell], out: Path, outcomes: dict[str, CellOutcome]) -> list[dict[str, Any]]:
    """One row per cell from its results.json (done), its error (failed), or neither (not run)."""
    rows = []
    for cell in cells:
        path = cell_dir(out, cell) / RESULTS
        if path.is_file():
            rows.append(cell_row(cell, DONE, json.loads(path.read_text(encoding="utf-8"))))
        elif cell.id in outcomes:
            rows.append(cell_row(cell, FAILED, None, outcomes[cell.id].error))
        else:
            rows.append(cell_row(cell, NOT_RUN, None))
    return rows


def _worst_line(
    rows: list[dict[str, Any]], h: HeatmapSpec, worst: tuple[str, str] | None
) -> tuple[list[float | None], bool] | None:
    """The heatmap's worst-case row (defenses as columns) or column (defenses as rows), if it shows both axes."""
    if worst is None or {h.rows, h.cols} != set(worst) or worst_direction(h.metric) is None:
        return None
    per, over = worst
    as_row = h.cols == per
    row_labels, col_labels, _ = heatmap_matrix(rows, h.rows, h.cols, h.metric)
    labels = col_labels if as_row else row_labels
    return worst_row(rows, per, over, h.metric, labels), as_row


def write_reports(spec: SweepSpec, rows: list[dict[str, Any]], out: Path) -> list[str]:
    """results.csv, one heatmap PNG per spec entry, summary.md; returns the file names written."""
    write_table(rows, out / TABLE)
    names = []
    worst = worst_axes(spec)
    for h in spec.heatmaps:
        name = f"heatmap_{h.metric}_by_{h.rows}_x_{h.cols}.png".replace("/", "-")
        draw_heatmap(rows, h, out / name, _worst_line(rows, h, worst))
        names.append(name)
    summary = summarize(rows, axes(spec), spec.metrics)
    sections = worst_markdown(rows, *worst, spec.metrics) if worst is not None else []
    write_text_atomic(out / SUMMARY, render_markdown(spec, rows, summary, names, sections=sections))
    return [TABLE, *names, SUMMARY]


def run_sweep(
    spec: SweepSpec, out: Path, address: str | None = None, report_only: bool = False, progress: Callable[[str], None] = _progress
) -> list[dict[str, Any]]:
    """Run the sweep's unfinished cells and (re)write its reports; returns the table's rows."""
    cells = expand(spec)
    resolved = validate_cells(cells, spec.cell_cpus)
    stale = check_existing(cells, out, resolved)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sweep.json", spec.model_dump(mode="json"))
    todo = [] if report_only else [c for c in cells if not is_finished(out, c)]
    progress(
        f"fl-sim sweep {spec.name!r}: {len(cells)} cells, {len(cells) - len(todo)} already finished, "
        f"{len(todo)} to run ({spec.parallel} at a time, {spec.cell_cpus:g} CPU each)"
    )

    bar = counter(len(todo), "sweep cells", unit="cell")

    def on_done(o: CellOutcome, i: int, n: int) -> None:
        state = "done" if o.returncode == 0 else f"FAILED: {o.error}"
        bar.update(1)
        progress(f"[cell {i}/{n}] {o.cell_id}: {state}")

    if stale and not report_only:
        bring_up_to_date(stale, out, resolved, progress)
    try:
        outcomes = run_cells(todo, out, spec.parallel, spec.cell_cpus, address, on_done) if todo else []
    finally:
        bar.close()
    resumed = check_existing(todo, out, resolved) if todo else []  # interrupted cells staged with older protocols
    if resumed:
        bring_up_to_date(resumed, out, resolved, progress)
    rows = gather_rows(cells, out, {o.cell_id: o for o in outcomes})
    files = write_reports(spec, rows, out)
    progress(f"sweep tables: {', '.join(str(out / f) for f in files)}")
    return rows
