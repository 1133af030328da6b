"""`fl-sim sweep` end to end on Ray: cells run as real `fl-sim run`s, a failing cell is reported
(not fatal), a second invocation reruns only what did not finish, and the table, heatmap and
summary are built from every cell's results.json."""

from __future__ import annotations

import csv
import json

import yaml

from fl_sim.cli import main
from tests.conftest import tiny_raw


def _sweep(tmp_path) -> str:
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny_raw(federation={"num_clients": 3, "rounds": 1})))
    sweep = {
        "name": "t",
        "scenario": "tiny.yaml",
        "parallel": 2,
        "grid": {"data.max_train_examples": [600, 66]},  # 66 examples - 64 for the server: too few for 3 clients
        "metrics": ["fp32.accuracy", "int4.backdoor_asr"],
        "heatmaps": [{"rows": "data.max_train_examples", "cols": "data.max_train_examples", "metric": "fp32.accuracy"}],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return str(path)


def test_heatmap_needs_two_axes(tmp_path, capsys):
    assert main(["sweep", _sweep(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "rows and cols are both" in capsys.readouterr().err


def test_sweep_runs_reports_and_resumes(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    _sweep(tmp_path)
    spec = yaml.safe_load(path.read_text())
    spec["grid"]["seed"] = [5]
    spec["heatmaps"] = [{"rows": "data.max_train_examples", "cols": "seed", "metric": "fp32.accuracy"}]
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"

    assert main(["sweep", str(path), "--out", str(out)]) == 1  # one cell cannot run
    err = capsys.readouterr().err
    assert "2 cells, 0 already finished, 2 to run" in err
    rows = {r["data.max_train_examples"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["600"]["status"] == "done" and rows["66"]["status"] == "failed"
    assert "3 clients but only 2 examples" in rows["66"]["error"]
    done = json.loads((out / "cells" / rows["600"]["cell"] / "results.json").read_text())
    assert float(rows["600"]["fp32.accuracy"]) == done["final"]["fp32"]["accuracy"]
    assert done["scenario"]["seed"] == 5 and done["scenario"]["data"]["max_train_examples"] == 600
    summary = (out / "summary.md").read_text()
    assert "1 done, 1 failed" in summary and rows["66"]["cell"] in summary
    assert (out / "heatmap_fp32.accuracy_by_data.max_train_examples_x_seed.png").stat().st_size > 1000

    assert main(["sweep", str(path), "--out", str(out)]) == 1  # reruns only the failed cell
    assert "2 cells, 1 already finished, 1 to run" in capsys.readouterr().err
    assert main(["sweep", str(path), "--out", str(out), "--report-only"]) == 1
    assert "0 to run" in capsys.readouterr().err
