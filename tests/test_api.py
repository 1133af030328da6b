"""The Python API against the CLI: the same scenario gives the same ``final`` through ``fl_sim.run``
(file, mapping or Scenario) and ``fl-sim run``; ``load_run`` reads it back as DataFrames;
``Run.evaluate`` matches ``fl-sim eval``; ``fl_sim.sweep`` matches ``fl-sim sweep``."""

from __future__ import annotations

import json
import math
import shutil

import matplotlib
import pytest
import yaml

import fl_sim
from fl_sim.api import wiring_of
from fl_sim.cli import main
from fl_sim.errors import UserError
from tests.conftest import tiny_raw

matplotlib.use("Agg")

RAW = tiny_raw(
    federation={"num_clients": 3, "rounds": 2},
    evaluation={"precisions": ["fp32", "int8", "int4"], "every_n_rounds": 1},
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same scenario run by the CLI (from its file) and by the API (from a mapping)."""
    tmp = tmp_path_factory.mktemp("api")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(RAW))
    assert main(["run", str(path), "--out", str(tmp / "cli")]) == 0
    api_run = fl_sim.run(RAW, out=tmp / "api")
    return tmp, path, fl_sim.load_run(tmp / "cli"), api_run


def test_the_api_run_has_the_cli_runs_final(runs):
    _, _, cli_run, api_run = runs
    assert api_run.results["final"] == cli_run.results["final"]
    assert api_run.results["scenario"] == cli_run.results["scenario"]


def test_file_mapping_and_scenario_wire_alike(runs, tmp_path):
    _, path, _, _ = runs
    by_file = wiring_of(path, {"seed": 9}).scenario
    by_dict = wiring_of(RAW, ["seed=9"]).scenario
    by_model = wiring_of(wiring_of(RAW).scenario, {"seed": 9}).scenario
    assert by_file == by_dict == by_model and by_file.seed == 9
    with pytest.raises(UserError, match="federation.rounds"):
        fl_sim.run(RAW, {"federation.rounds": 0}, out=tmp_path / "x")
    with pytest.raises(UserError, match="no results.json"):
        fl_sim.load_run(tmp_path)


def test_dataframes(runs):
    _, _, cli_run, _ = runs
    res = cli_run.results
    final = cli_run.final
    assert list(final.index) == ["fp32", "int8", "int4"]
    assert final.loc["int4", "accuracy"] == res["final"]["int4"]["accuracy"]
    assert "per_class_accuracy" not in final.columns  # lists stay in results.json
    history = cli_run.history
    assert list(history.index) == [0, 1, 2]
    assert history[("int4", "backdoor_asr")].iloc[-1] == pytest.approx(res["final"]["int4"]["backdoor_asr"])
    assert math.isnan(history[("int8", "accuracy")].loc[0]) or history[("int8", "accuracy")].loc[0] >= 0
    clients = cli_run.clients
    assert len(clients) == 3 * 2  # every client trains in both rounds
    bad = res["roles"]["malicious"]
    assert set(clients[clients.role == "malicious"].index.get_level_values("client")) == set(bad)
    assert clients.loc[(1, 0), "norm_ratio"] == pytest.approx(res["history"][1]["update_norm_ratio"]["0"])
    ax = cli_run.plot("accuracy", ["fp32", "int4"])
    assert [line.get_label() for line in ax.get_lines()] == ["fp32", "int4"]
    with pytest.raises(UserError, match="not in the run's history"):
        cli_run.plot("accuracy", ["fp8"])


def test_evaluate_matches_fl_sim_eval(runs):
    tmp, _, _, _ = runs
    a, b = tmp / "eval_api", tmp / "eval_cli"
    shutil.copytree(tmp / "cli", a)
    shutil.copytree(tmp / "cli", b)
    got = fl_sim.load_run(a).evaluate("worst_case", draws=2, sizes=[32], distributions=["in_distribution"])
    sets = [
        "evaluation.worst_case.draws=2",
        "evaluation.worst_case.sizes=[32]",
        "evaluation.worst_case.distributions=[in_distribution]",
    ]
    argv = ["eval", str(b), "--protocol", "worst_case"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    want = json.loads((b / "results.json").read_text())["evaluation"]["worst_case"]
    assert got["worst_case"]["result"] == want["result"]


def test_sweep_matches_fl_sim_sweep(runs):
    tmp, path, _, _ = runs
    spec = {"name": "s", "scenario": [str(path)], "grid": {"seed": [4]}, "metrics": ["fp32.accuracy", "int4.accuracy"]}
    table = fl_sim.sweep(spec, tmp / "sweep_api")
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(tmp / "sweep.yaml"), "--out", str(tmp / "sweep_cli")]) == 0
    cli_table = fl_sim.sweep(tmp / "sweep.yaml", tmp / "sweep_cli", report_only=True)
    assert list(table["status"]) == ["done"]
    assert table["fp32.accuracy"].tolist() == cli_table["fp32.accuracy"].tolist()
    assert table["int4.accuracy"].tolist() == cli_table["int4.accuracy"].tolist()
