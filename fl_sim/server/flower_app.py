"""The Flower ServerApp of a run: it hands Flower's Grid to the job the runner gives it."""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp


def make_server_app(job: Callable[[Grid], None]) -> ServerApp:
    """A ServerApp whose main runs ``job`` on the Grid (the runner's rounds, evaluation and outputs)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        job(grid)

    return app
