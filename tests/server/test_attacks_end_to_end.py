"""Attacks through the real Flower path: the server-side adversary rewrites the colluders'
replies (omniscient sign flip), and every round records which colluders were sampled."""

import json

import pytest
import yaml

from fl_sim.cli import main
from fl_sim.data.federated import federated_data
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.server.plain_loop import run_plain
from fl_sim.sweeps.table import flatten_results
from tests.conftest import scenario_of, tiny_raw, wired


def test_omniscient_sign_flip_through_flower_stalls_training(tmp_path):
    raw = tiny_raw(
        federation={"num_clients": 4, "rounds": 3},
        attack={"behaviour": "sign_flip", "collusion": "omniscient", "num_malicious": 1, "params": {"scale": 5.0}},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    bad = res["roles"]["malicious"]
    for h in res["history"][1:]:
        assert h["attack_active"] and h["malicious_sampled"] == {str(i): True for i in bad}
    # The same federation without the attack, in the single-process loop (same client code).
    honest = scenario_of({**raw, "attack": {"num_malicious": 0}}, "h")
    data = federated_data(honest.data, honest.federation.num_clients, honest.seed)
    model = run_plain(wired(honest).clients, data)
    clean = evaluate_precisions(model, data, honest.evaluation, honest.attack)["fp32"]["accuracy"]
    # 3 honest updates u and one of -5u: the aggregate moves by -u/2 per round, so no learning.
    assert clean > 0.6
    assert res["final"]["fp32"]["accuracy"] < 0.3


def test_optimal_ipm_searched_against_fedavg_through_flower_stalls_training(tmp_path):
    raw = tiny_raw(
        federation={"num_clients": 4, "rounds": 3},
        attack={"behaviour": "optimal_ipm", "collusion": "omniscient", "num_malicious": 1, "params": {}},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    # Against the mean the deviation grows with epsilon: the search takes the largest (20), so the
    # aggregate is (3 - 20) / 4 of the honest mean: training runs backwards.
    assert res["final"]["fp32"]["accuracy"] < 0.3
    assert res["defense"]["name"] == "fedavg" and res["defense"]["pre"] == []


def test_adaptive_attacks_need_a_replica_of_the_rule(tmp_path):
    from fl_sim.errors import UserError

    attack = {"behaviour": "fang", "collusion": "omniscient", "num_malicious": 1, "params": {}}
    with pytest.raises(UserError, match=r"the scenario's strategy .*no replica of rule 'dnc'"):
        scenario_of(tiny_raw(attack=attack, strategy={"name": "dnc"}), "t")
    scenario_of(tiny_raw(attack={**attack, "params": {"against": "nnm+krum"}}, strategy={"name": "dnc"}), "t")
    with pytest.raises(UserError, match=r"params.against: unknown pre-aggregator 'foo'"):
        scenario_of(tiny_raw(attack={**attack, "params": {"against": "foo+krum"}}), "t")


def test_omniscient_qat_rounding_through_flower_records_its_exact_placement(tmp_path):
    raw = tiny_raw(
        federation={"num_clients": 6, "rounds": 2},
        strategy={"name": "fedtrimmedavg"},
        attack={"behaviour": "qat_rounding", "collusion": "omniscient", "num_malicious": 2, "start_round": 2},
    )
    raw["attack"]["params"] = {"epochs": 1, "lr": 0.01}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    first, attacked = res["history"][1], res["history"][2]
    assert first["placement"] == {} and not first["attack_active"]
    m = attacked["placement"]
    # the adversary learned on the real round: every flip it wanted is reachable, and the trimmed mean lands what it placed
    assert m["exact"] == 1.0 and 0 < m["landed"] == m["kept"] <= m["wanted"] <= m["reachable"]
    assert "Exact placement of the rounding flips" in (tmp_path / "r" / "report.md").read_text()
    assert flatten_results(res)["placement.landed"] == m["landed"]
