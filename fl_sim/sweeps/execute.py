"""Run a sweep's cells on Ray: one task per cell, each an ``fl-sim run`` subprocess.

Each subprocess has its own private Ray instance sized to the CPUs the task reserved. Finished cells
are never rerun; an interrupted cell continues from its last checkpoint. The table, heatmaps and
summary are rebuilt from every cell's results.json at the end.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fl_sim.errors import UserError
from fl_sim.sweeps.grid import Cell

RESULTS = "results.json"


@dataclass(frozen=True)
class CellOutcome:
    """How one cell's run ended: its id, its return code (-1 when its Ray task died) and its last error line."""

    cell_id: str
    returncode: int
    error: str  # the cell's last error line ("" when it succeeded)


def cell_dir(out: Path, cell: Cell) -> Path:
    """Return the run directory of ``cell`` in the sweep's output folder ``out``."""
    return out / "cells" / cell.id


def is_finished(out: Path, cell: Cell) -> bool:
    """Return whether ``cell`` has finished: its run directory holds a results.json."""
    return (cell_dir(out, cell) / RESULTS).is_file()


def cell_command(cell: Cell, run_dir: Path, num_cpus: float) -> list[str]:
    """Return the ``fl-sim run`` command of ``cell``: resume an interrupted run, else start afresh."""
    from fl_sim.runner import staging_dir
    from fl_sim.server.checkpoint import load_checkpoint

    base = [sys.executable, "-m", "fl_sim.cli", "run"]
    cpus = ["--num-cpus", str(max(1, int(num_cpus)))]
    stage = staging_dir(run_dir)
    try:
        resumable = stage.is_dir() and load_checkpoint(stage) is not None
    except ValueError:  # an unreadable checkpoint: the cell starts afresh (--force replaces it)
        resumable = False
    if resumable:
        return base + ["--resume", str(run_dir)] + cpus
    sets = [arg for o in cell.overrides for arg in ("--set", o)]
    return base + [cell.scenario, *sets, "--out", str(run_dir), "--force"] + cpus


def _load_prctl() -> Callable[..., int] | None:
    try:  # looked up here, in the parent: a forked child of a threaded process should only make the call
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the cell's run is killed when its Ray worker dies (a cancelled sweep leaves no orphans)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_cell(cell: Cell, run_dir: Path, num_cpus: float, env: dict[str, str], cwd: str) -> CellOutcome:
    """Run one cell to completion (in whatever process calls it); its output goes to ``<id>.log``."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{cell.id}.log"
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(
            cell_command(cell, run_dir, num_cpus),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd if Path(cwd).is_dir() else None,
            preexec_fn=_die_with_parent,
        )
    error = ""
    if proc.returncode != 0:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        error = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
        error = error or f"exit code {proc.returncode}"
    return CellOutcome(cell.id, proc.returncode, error)


def cell_env(driver_env: dict[str, str]) -> dict[str, str]:
    """Return the environment of a cell's run: the sweep driver's, without any Ray address.

    A cell always starts its own private local Ray instance inside the CPUs its task reserved.
    """
    return {k: v for k, v in driver_env.items() if k != "RAY_ADDRESS"}


def _ray_init(address: str | None, num_cpus: int | None) -> None:
    import logging

    import ray

    from fl_sim.ray_backend import LOCAL, resolve_address

    addr = resolve_address(address)
    kwargs: dict[str, Any] = {"address": addr, "logging_level": logging.ERROR, "log_to_driver": False}
    if addr == LOCAL:
        kwargs["include_dashboard"] = False
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**kwargs)
    except Exception as exc:  # unreachable address, no cluster there, version mismatch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot start or reach Ray at {addr}: {first}") from None


def largest_node_cpus() -> float:
    """Return the most CPUs any live node of the connected Ray cluster has."""
    import ray

    # ray leaves nodes() unannotated
    return max(
        (float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")),  # type: ignore[no-untyped-call]
        default=0.0,
    )


def run_cells(
    cells: list[Cell],
    out: Path,
    parallel: int,
    cell_cpus: float,
    address: str | None,
    on_done: Callable[[CellOutcome, int, int], None],
) -> list[CellOutcome]:
    """Run ``cells`` as Ray tasks, at most ``parallel`` at a time; ``on_done`` after each.

    Parameters
    ----------
    cells : list of Cell
        The cells to run (the unfinished ones).
    out : Path
        The sweep's output folder; each cell runs in ``cell_dir(out, cell)``.
    parallel : int
        Most cells running at once.
    cell_cpus : float
        CPUs each cell's Ray task reserves; more than the largest node has raises UserError.
    address : str or None
        The Ray cluster to use, as ``fl_sim.ray_backend.resolve_address`` resolves it.
    on_done : callable
        Called after each cell as ``on_done(outcome, cells finished so far, number of cells)``.

    Returns
    -------
    list of CellOutcome
        One per cell, in the order they finished.
    """
    import ray

    env = cell_env(dict(os.environ))
    cwd = os.getcwd()
    _ray_init(address, None)
    try:
        if cell_cpus > largest_node_cpus():
            raise UserError(
                f"cell_cpus {cell_cpus:g} is more than any Ray node has ({largest_node_cpus():g} CPUs): "
                "no cell could ever be scheduled"
            )
        task = ray.remote(run_cell).options(num_cpus=cell_cpus, max_retries=0)
        pending: dict[Any, Cell] = {}
        queue = list(cells)
        outcomes: list[CellOutcome] = []
        while queue or pending:
            while queue and len(pending) < parallel:
                cell = queue.pop(0)
                pending[task.remote(cell, cell_dir(out, cell), cell_cpus, env, cwd)] = cell
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the task itself died (node lost, worker killed)
                    outcome = CellOutcome(cell.id, -1, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                outcomes.append(outcome)
                on_done(outcome, len(outcomes), len(cells))
        return outcomes
    finally:
        ray.shutdown()
