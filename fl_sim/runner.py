"""Run a scenario end to end: a staging directory, the Flower simulation (Ray), the final
per-precision evaluation, results written atomically, then the directory renamed into place.
A failed or interrupted run never leaves a half-written run directory under the final name."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fl_sim.config.schema import Scenario
from fl_sim.errors import UserError
from fl_sim.reporting.files import write_json_atomic

INCOMPLETE_MARKER = "INCOMPLETE"


def choose_run_dir(s: Scenario, out: str | None, force: bool) -> Path:
    """``--out`` as given, else ``<output_dir>/<name>-<timestamp>``; refuse to overwrite without force."""
    path = Path(out) if out else Path(s.output_dir) / f"{s.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if path.exists() and not force:
        raise UserError(f"run directory {path} already exists (use --force to overwrite)")
    return path


def staging_dir(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.incomplete"


SCENARIO_FILE = "scenario.json"


def resume_scenario(run_dir: Path) -> Scenario:
    """The scenario of the interrupted run ``run_dir`` (read from its staging directory)."""
    from fl_sim.config.loader import validate_dict
    from fl_sim.server.checkpoint import load_checkpoint

    stage = staging_dir(run_dir)
    if run_dir.exists() and not stage.exists():
        raise UserError(f"{run_dir} is a finished run: nothing to resume")
    if not (stage / SCENARIO_FILE).is_file() or load_checkpoint(stage) is None:
        raise UserError(f"no interrupted run with a checkpoint at {run_dir} (looked in {stage})")
    return validate_dict(json.loads((stage / SCENARIO_FILE).read_text(encoding="utf-8")), str(stage / SCENARIO_FILE))


def _prepare_stage(s: Scenario, run_dir: Path, resume: bool) -> Path:
    stage = staging_dir(run_dir)
    if not resume:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        (stage / INCOMPLETE_MARKER).write_text("this run has not finished; continue it with: fl-sim run --resume " + str(run_dir) + "\n")
        write_json_atomic(stage / SCENARIO_FILE, s.model_dump(mode="json"))
    return stage


def execute(grid, s: Scenario, run_dir: Path, resume: bool = False, ray_address: str | None = None) -> dict[str, Any]:
    """The ServerApp's work: rounds (checkpointed), final evaluation, outputs; returns results."""
    from fl_sim.data.federated import federated_data
    from fl_sim.evaluation.precisions import evaluate_precisions
    from fl_sim.evaluation.protocols.run import run_protocols
    from fl_sim.reporting.outputs import write_outputs
    from fl_sim.ray_backend import cluster_info
    from fl_sim.server.loop import initial_model, run_rounds

    from fl_sim.server.checkpoint import MODEL_FILE, STATE_FILE

    t0 = time.monotonic()
    stage = _prepare_stage(s, run_dir, resume)
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    outcome = run_rounds(grid, s, data, checkpoint_dir=stage)
    t_fed = time.monotonic() - t0
    cluster = cluster_info(ray_address)
    model = initial_model(s, data)
    model.load_state_dict(outcome.final_state)
    final = evaluate_precisions(model, data, s.evaluation, s.attack)
    evaluation = run_protocols(model, data, s, [p for p in s.evaluation.protocols if p != "precisions"])
    timing = {"federation_s": t_fed, "total_s": time.monotonic() - t0}
    results = write_outputs(stage, s, data, outcome, final, model, timing, evaluation, cluster)
    for name in (INCOMPLETE_MARKER, MODEL_FILE, STATE_FILE):
        (stage / name).unlink()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    os.replace(stage, run_dir)
    return results


def with_absolute_data_path(s: Scenario) -> Scenario:
    """``s`` with ``data.path`` made absolute (a no-op without a path)."""
    if s.data.path is None or Path(s.data.path).is_absolute():
        return s
    data = s.data.model_copy(update={"path": str(Path(s.data.path).expanduser().resolve())})
    return s.model_copy(update={"data": data})


def run_scenario(s: Scenario, run_dir: Path, verbose: bool = False, resume: bool = False,
                 ray_address: str | None = None, num_cpus: float | None = None) -> dict[str, Any]:
    """Run ``s`` on Flower's simulation engine and write its outputs to ``run_dir``: on a private
    local Ray instance (``num_cpus`` caps it), or on the existing cluster at ``ray_address``."""
    from fl_sim.server.flower_app import make_apps
    from flwr.simulation import run_simulation

    from fl_sim.data.federated import federated_data
    from fl_sim.data.attack_targets import check_attack_targets
    from fl_sim.ray_backend import backend_config
    from fl_sim.server.routing import execution_nodes

    s = with_absolute_data_path(s)  # client processes on other nodes run in other directories
    try:
        data = federated_data(s.data, s.federation.num_clients, s.seed)  # fail fast on data problems
    except ValueError as exc:
        raise UserError(f"data: {exc}") from None
    try:
        check_attack_targets(data, s.attack)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    holder: dict[str, Any] = {}
    server_app, client_app = make_apps(s, run_dir, holder, resume, ray_address)
    backend = backend_config(s, ray_address, num_cpus, verbose)
    flwr_logger = logging.getLogger("flwr")
    old = flwr_logger.level
    if not verbose:  # client failures are recorded per round and shown in the progress line instead
        flwr_logger.setLevel(logging.CRITICAL)
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=execution_nodes(s),
                       backend_config=backend, verbose_logging=verbose)
    finally:
        flwr_logger.setLevel(old)
    if "error" in holder:
        raise holder["error"]
    if "results" not in holder:
        raise RuntimeError("the simulation ended without results (see the log above)")
    return holder["results"]
