"""Run a scenario end to end, writing its results atomically.

A staging directory, the Flower simulation (Ray), the final
per-precision evaluation, results written atomically, then the directory renamed into place.
A failed or interrupted run never leaves a half-written run directory under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from flwr.serverapp import Grid

from fl_sim.config.schema import Scenario
from fl_sim.errors import UserError
from fl_sim.files import write_json_atomic
from fl_sim.wiring import Wiring, from_dict

INCOMPLETE_MARKER = "INCOMPLETE"


def choose_run_dir(s: Scenario, out: str | None, force: bool) -> Path:
    """``--out`` as given, else ``<output_dir>/<name>-<timestamp>``; refuse to overwrite without force."""
    path = Path(out) if out else Path(s.output_dir) / f"{s.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if path.exists() and not force:
        raise UserError(f"run directory {path} already exists (use --force to overwrite)")
    return path


def staging_dir(run_dir: Path) -> Path:
    """The hidden folder a run is written into before it is renamed to ``run_dir``."""
    return run_dir.parent / f".{run_dir.name}.incomplete"


SCENARIO_FILE = "scenario.json"


def resume_scenario(run_dir: Path) -> Wiring:
    """The wired scenario of the interrupted run ``run_dir`` (read from its staging directory)."""
    from fl_sim.server.checkpoint import load_checkpoint

    stage = staging_dir(run_dir)
    if run_dir.exists() and not stage.exists():
        raise UserError(f"{run_dir} is a finished run: nothing to resume")
    try:
        ckpt = load_checkpoint(stage)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not (stage / SCENARIO_FILE).is_file() or ckpt is None:
        raise UserError(f"no interrupted run with a checkpoint at {run_dir} (looked in {stage})")
    return from_dict(json.loads((stage / SCENARIO_FILE).read_text(encoding="utf-8")), str(stage / SCENARIO_FILE))


def _prepare_stage(s: Scenario, run_dir: Path, resume: bool) -> Path:
    stage = staging_dir(run_dir)
    if not resume:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        (stage / INCOMPLETE_MARKER).write_text(
            "this run has not finished; continue it with: fl-sim run --resume " + str(run_dir) + "\n"
        )
        write_json_atomic(stage / SCENARIO_FILE, s.model_dump(mode="json"))
    return stage


def execute(grid: Grid, w: Wiring, run_dir: Path, resume: bool = False, ray_address: str | None = None) -> dict[str, Any]:
    """The ServerApp's work: rounds (checkpointed), final evaluation, outputs; returns results."""
    from fl_sim.data.federated import federated_data
    from fl_sim.evaluation.precisions import evaluate_precisions, round_metrics
    from fl_sim.evaluation.protocols.run import run_protocols
    from fl_sim.ray_backend import cluster_info
    from fl_sim.reporting.outputs import write_outputs
    from fl_sim.server.checkpoint import MODEL_FILE, STATE_FILE
    from fl_sim.server.loop import initial_model, run_rounds

    s = w.scenario
    t0 = time.monotonic()
    stage = _prepare_stage(s, run_dir, resume)
    data = federated_data(s.data, s.federation.num_clients, s.seed)

    def evaluate_round(model: torch.nn.Module, precisions: list[str]) -> dict[str, dict[str, float]]:
        return round_metrics(evaluate_precisions(model, data, s.evaluation, s.attack, precisions))

    outcome = run_rounds(grid, s, w.defense, w.clients.attack, data, evaluate_round, checkpoint_dir=stage)
    t_fed = time.monotonic() - t0
    cluster = cluster_info(ray_address)
    model = initial_model(s, data)
    model.load_state_dict(outcome.final_state)
    final = evaluate_precisions(model, data, s.evaluation, s.attack)
    evaluation = run_protocols(model, data, s, [p for p in w.protocols if p != "precisions"])
    timing = {"federation_s": t_fed, "total_s": time.monotonic() - t0}
    results = write_outputs(stage, s, w.malicious, w.defense, data, outcome, final, model, timing, evaluation, cluster)
    for name in (INCOMPLETE_MARKER, MODEL_FILE, STATE_FILE):
        (stage / name).unlink()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    os.replace(stage, run_dir)
    return results


def run_scenario(
    w: Wiring,
    run_dir: Path,
    verbose: bool = False,
    resume: bool = False,
    ray_address: str | None = None,
    num_cpus: float | None = None,
) -> dict[str, Any]:
    """Run ``w`` on Flower's simulation engine and write its outputs to ``run_dir``.

    The clients run on a private local Ray instance (``num_cpus`` caps it), or on the existing
    cluster at ``ray_address``. The server's job hands its results (or its exception) back through a
    ``Future``; an exception is re-raised here, in the caller's thread.
    """
    from flwr.simulation import run_simulation

    from fl_sim.clients.flower_app import make_client_app
    from fl_sim.data.attack_targets import check_attack_targets
    from fl_sim.data.federated import federated_data
    from fl_sim.ray_backend import backend_config
    from fl_sim.server.flower_app import make_server_app
    from fl_sim.server.routing import execution_nodes

    s = w.scenario
    try:
        data = federated_data(s.data, s.federation.num_clients, s.seed)  # fail fast on data problems
    except ValueError as exc:
        raise UserError(f"data: {exc}") from None
    try:
        check_attack_targets(data, s.attack)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    done: Future[dict[str, Any]] = Future()

    def job(grid: Grid) -> None:
        try:
            done.set_result(execute(grid, w, run_dir, resume, ray_address))
        except BaseException as exc:  # handed to the caller's thread
            done.set_exception(exc)
            raise

    plan = w.clients
    backend = backend_config(s, ray_address, num_cpus, verbose)
    flwr_logger = logging.getLogger("flwr")
    old = flwr_logger.level
    if not verbose:  # client failures are recorded per round and shown in the progress line instead
        flwr_logger.setLevel(logging.CRITICAL)
    try:
        run_simulation(
            server_app=make_server_app(job),
            client_app=make_client_app(lambda _: plan),
            num_supernodes=execution_nodes(s),
            backend_config=backend,
            verbose_logging=verbose,
        )
    finally:
        flwr_logger.setLevel(old)
    if not done.done():
        raise RuntimeError("the simulation ended without results (see the log above)")
    return done.result()
