"""The Flower App that ``flwr run .`` loads (pyproject's ``[tool.flwr.app.components]``).

Both apps read the scenario path from the run config (``scenario``, resolved against the working
directory, else the project root) and wire it; ``fl-sim run`` builds its own apps around one wiring.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_sim.clients.flower_app import make_client_app
from fl_sim.clients.plan import ClientPlan
from fl_sim.wiring import load


def scenario_path(context: Context) -> str:
    """run_config['scenario'], resolved against the working directory, else the project root."""
    p = Path(str(context.run_config["scenario"]))
    if not p.is_absolute() and not p.exists():
        p = Path(__file__).resolve().parents[1] / p
    return str(p)


def _client_plan(context: Context) -> ClientPlan:
    return load(scenario_path(context)).clients


server_app = ServerApp()
client_app = make_client_app(_client_plan)


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    """Run the scenario named by run_config['scenario'] into run_config['out'] (or a fresh run directory)."""
    from fl_sim.runner import choose_run_dir, execute

    w = load(scenario_path(context))
    run_dir = choose_run_dir(w.scenario, str(context.run_config.get("out", "")) or None, force=False)
    execute(grid, w, run_dir)
    print(f"fl-sim: results in {run_dir}")
