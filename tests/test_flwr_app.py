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


def test_a_federation_without_nodes_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import pytest
    import yaml

    from fl_sim.server import loop
    from tests.conftest import tiny_raw

    class NoNodeGrid:
        def get_node_ids(self):
            return []

    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny_raw()))
    monkeypatch.setattr(loop, "NODE_WAIT_S", 0.2)
    context = SimpleNamespace(run_config={"scenario": str(scen), "out": str(tmp_path / "run")})
    with pytest.raises(SystemExit) as exit_info:
        app._main(NoNodeGrid(), context)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fl-sim: error: no Flower node connected within 0s; the scenario needs at least 1 (ideally 4, one per client "
        "of a round): start SuperNodes or raise the federation's num-supernodes"
    ]
    assert not (tmp_path / "run" / "results.json").exists()


def test_the_run_config_takes_overrides(tmp_path):
    context = SimpleNamespace(run_config={"scenario": "scenarios/quickstart.yaml", "set": "federation.rounds=2 seed=7"})
    plan = app._client_plan(context)
    assert plan.scenario.federation.rounds == 2 and plan.scenario.seed == 7
