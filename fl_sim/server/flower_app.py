"""Flower ServerApp objects: one bound to a scenario for ``fl-sim run``, and the module-level
``app`` that ``flwr run .`` loads (it reads the scenario path from the run config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fl_sim.config.schema import Scenario


def make_server_app(s: Scenario, run_dir: Path, holder: dict[str, Any], resume: bool = False,
                    ray_address: str | None = None) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        from fl_sim.runner import execute

        try:
            holder["results"] = execute(grid, s, run_dir, resume, ray_address)
        except BaseException as exc:  # surfaced by the runner in the main thread
            holder["error"] = exc
            raise

    return app


def make_apps(s: Scenario, run_dir: Path, holder: dict[str, Any], resume: bool = False,
              ray_address: str | None = None) -> tuple[ServerApp, ClientApp]:
    from fl_sim.clients.flower_app import make_client_app

    return make_server_app(s, run_dir, holder, resume, ray_address), make_client_app(s)


app = ServerApp()


@app.main()
def _flwr_run_main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run .``: run the scenario named by run_config['scenario']."""
    from fl_sim import components  # noqa: F401
    from fl_sim.clients.flower_app import scenario_path
    from fl_sim.config.loader import load_scenario
    from fl_sim.runner import choose_run_dir, execute

    s = load_scenario(scenario_path(context))
    run_dir = choose_run_dir(s, str(context.run_config.get("out", "")) or None, force=False)
    execute(grid, s, run_dir)
    print(f"fl-sim: results in {run_dir}")
