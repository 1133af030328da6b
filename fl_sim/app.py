"""The Flower App that ``flwr run .`` loads (pyproject's ``[tool.flwr.app.components]``).

Both apps read the scenario path from the run config (``scenario``, resolved against the working
directory, else the project root) and its overrides (``set``), and wire it; ``fl-sim run`` builds its
own apps around one wiring. Flower's local simulation starts 2 SuperNodes by default (flwr >= 1.32):
each then runs its share of a round's clients in turn.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_sim.clients.flower_app import make_client_app
from fl_sim.clients.plan import ClientPlan
from fl_sim.errors import EXIT_USER_ERROR, UserError
from fl_sim.server.loop import NoNodes
from fl_sim.wiring import load


def scenario_path(context: Context) -> str:
    """run_config['scenario'], resolved against the working directory, else the project root."""
    p = Path(str(context.run_config["scenario"]))
    if not p.is_absolute() and not p.exists():
        p = Path(__file__).resolve().parents[1] / p
    return str(p)


def overrides(context: Context) -> list[str]:
    """run_config['set']: ``--set`` overrides separated by spaces (``"federation.rounds=2 seed=3"``)."""
    return shlex.split(str(context.run_config.get("set", "")))


def _client_plan(context: Context) -> ClientPlan:
    return load(scenario_path(context), overrides(context)).clients


server_app = ServerApp()
client_app = make_client_app(_client_plan)


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    """Run the scenario named by run_config['scenario'] (with run_config['set']) into run_config['out'].

    A user mistake (a bad scenario, no node to run on) ends the run with one line on stderr and exit
    status 2, as ``fl-sim`` does, instead of a traceback or a silent wait.
    """
    from fl_sim.runner import choose_run_dir, execute

    try:
        w = load(scenario_path(context), overrides(context))
        run_dir = choose_run_dir(w.scenario, str(context.run_config.get("out", "")) or None, force=False)
        execute(grid, w, run_dir)
    except (UserError, NoNodes) as exc:
        print(f"fl-sim: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
    print(f"fl-sim: results in {run_dir}", flush=True)
