"""The apps ``flwr run .`` loads (pyproject's [tool.flwr.app.components]) exist and wire the configured scenario."""

import tomllib
from pathlib import Path
from types import SimpleNamespace

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fl_sim import app

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_names_the_apps_of_fl_sim_app():
    components = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "fl_sim.app:server_app", "clientapp": "fl_sim.app:client_app"}
    assert isinstance(app.server_app, ServerApp) and isinstance(app.client_app, ClientApp)


def test_the_run_config_scenario_resolves_and_wires(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # flwr may start the apps elsewhere: the path falls back to the project root
    context = SimpleNamespace(run_config={"scenario": "scenarios/quickstart.yaml"})
    assert Path(app.scenario_path(context)) == ROOT / "scenarios" / "quickstart.yaml"
    plan = app._client_plan(context)
    assert plan.scenario.name == "quickstart" and len(plan.attack.malicious) == plan.scenario.attack.num_malicious
