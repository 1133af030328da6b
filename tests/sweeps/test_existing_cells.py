"""A sweep never reports an old cell's results for a changed scenario, and refuses resources that
could never work, before anything runs."""

import json

import pytest
import yaml

from fl_sim.cli import main
from fl_sim.errors import UserError
from fl_sim.sweeps.grid import Cell
from fl_sim.sweeps.sweep import check_existing, first_difference
from tests.conftest import tiny_raw


def test_first_difference_names_the_dotted_key():
    a = {"federation": {"rounds": 5, "num_clients": 10}, "seed": 0}
    assert first_difference(a, a) is None
    assert first_difference(a, {"federation": {"rounds": 6, "num_clients": 10}, "seed": 0}) == "federation.rounds"
    assert first_difference(a, {**a, "extra": 1}) == "extra"
    assert first_difference(1, 2) == "(the whole scenario)"


def test_finished_cell_of_another_scenario_is_refused(tmp_path):
    cell = Cell(id="c", axes={}, scenario="s.yaml", overrides=[])
    run = tmp_path / "cells" / "c"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"scenario": {"federation": {"rounds": 5}}}))
    check_existing([cell], tmp_path, {"c": {"federation": {"rounds": 5}}})  # the same: fine
    with pytest.raises(UserError, match="federation.rounds differs"):
        check_existing([cell], tmp_path, {"c": {"federation": {"rounds": 6}}})


def test_finished_cell_differing_only_in_protocols_is_returned_to_re_evaluate(tmp_path):
    cell = Cell(id="c", axes={}, scenario="s.yaml", overrides=[])
    run = tmp_path / "cells" / "c"
    run.mkdir(parents=True)
    old = {"seed": 0, "evaluation": {"precisions": ["fp32", "int4"], "protocols": ["precisions"], "mitigation": {"bits": [4]}}}
    (run / "results.json").write_text(json.dumps({"scenario": old}))
    more = {**old, "evaluation": {**old["evaluation"], "protocols": ["precisions", "mitigation"], "mitigation": {"bits": [8, 4]}}}
    assert check_existing([cell], tmp_path, {"c": more}) == [cell]
    assert check_existing([cell], tmp_path, {"c": old}) == []
    # A change to the precisions would make its ``final`` stale: refused as any other difference.
    with pytest.raises(UserError, match="evaluation.precisions differs"):
        check_existing([cell], tmp_path, {"c": {**more, "evaluation": {**more["evaluation"], "precisions": ["fp32"]}}})


def test_interrupted_cell_differing_only_in_protocols_resumes_as_staged(tmp_path):
    cell = Cell(id="c", axes={}, scenario="s.yaml", overrides=[])
    stage = tmp_path / "cells" / ".c.incomplete"
    stage.mkdir(parents=True)
    staged = {"seed": 1, "evaluation": {"protocols": ["precisions"], "mitigation": {"bits": [4]}}}
    (stage / "scenario.json").write_text(json.dumps(staged))
    asked = {"seed": 1, "evaluation": {"protocols": ["precisions", "mitigation"], "mitigation": {"bits": [8, 4]}}}
    assert check_existing([cell], tmp_path, {"c": asked}) == []  # not refused; nothing to re-evaluate yet


def test_interrupted_cell_of_another_scenario_is_refused(tmp_path):
    cell = Cell(id="c", axes={}, scenario="s.yaml", overrides=[])
    stage = tmp_path / "cells" / ".c.incomplete"
    stage.mkdir(parents=True)
    (stage / "scenario.json").write_text(json.dumps({"seed": 1}))
    with pytest.raises(UserError, match="seed differs"):
        check_existing([cell], tmp_path, {"c": {"seed": 2}})


def test_clients_needing_more_cpus_than_a_cell_has(tmp_path, capsys):
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny_raw(federation={"client_resources": {"num_cpus": 2}})))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "t", "scenario": "tiny.yaml", "grid": {"seed": [0]}, "cell_cpus": 1}))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "o")]) == 2
    assert "need 2 CPUs each, more than cell_cpus 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
