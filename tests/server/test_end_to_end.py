"""A real Flower simulation on Ray, end to end through the CLI: outputs, schema of results.json,
round records, and determinism (two runs give identical final metrics)."""

import json

import pytest
import yaml

from fl_sim.cli import main
from tests.conftest import scenario_of, tiny_raw


def _write(tmp_path, raw) -> str:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def test_run_writes_results_and_is_deterministic(tmp_path, capsys):
    scen = _write(tmp_path, tiny_raw(evaluation={"every_n_rounds": 1}))
    finals = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", scen, "--out", str(out)]) == 0
        res = json.loads((out / "results.json").read_text())
        finals.append(res["final"])
        for f in (
            "report.md",
            "accuracy_per_round.png",
            "asr_per_round.png",
            "final_by_precision.png",
            "global_model.safetensors",
        ):
            assert (out / f).is_file(), f
        assert not (out / "INCOMPLETE").exists()
    assert finals[0] == finals[1]
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(res["final"]) == {"fp32", "int8", "int4"}
    for m in res["final"].values():
        assert {"accuracy", "per_class_accuracy", "backdoor_asr"} <= set(m)
        assert len(m["per_class_accuracy"]) == 10
    hist = res["history"]
    assert [h["round"] for h in hist] == [0, 1, 2]
    assert hist[1]["replied"] == [0, 1, 2, 3] and hist[1]["malicious_in_cohort"] == res["roles"]["malicious"]
    assert len(res["roles"]["malicious"]) == 1
    assert "int4" in hist[1]["precisions"]
    assert "| int4 |" in (tmp_path / "a" / "report.md").read_text()


def test_sampled_cohort_and_robust_strategy(tmp_path):
    raw = tiny_raw(
        federation={"num_clients": 6, "rounds": 2, "fraction_train": 0.5, "min_train_clients": 3},
        attack={"num_malicious": 1},
        strategy={"name": "fedmedian"},
    )
    out = tmp_path / "r"
    assert main(["run", _write(tmp_path, raw), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    cohorts = [h["replied"] for h in res["history"][1:]]
    assert all(len(c) == 3 for c in cohorts)


def test_failing_and_hostile_clients_do_not_stop_the_run(tmp_path):
    from fl_sim.clients.faults import fault_for

    raw = tiny_raw(
        federation={"num_clients": 5, "rounds": 3, "faults": {"rate": 0.2, "kind": "exception"}},
        attack={"behaviour": "hostile_payload", "num_malicious": 1, "params": {"kind": "nan"}},
    )
    s = scenario_of(raw, "t")
    out = tmp_path / "r"
    assert main(["run", _write(tmp_path, raw), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    bad = res["roles"]["malicious"][0]
    for h in res["history"][1:]:
        expected_failed = [p for p in range(5) if fault_for(s, h["round"], p) is not None]
        assert h["failed"] == expected_failed
        assert sorted(h["errors"]) == sorted(str(p) for p in expected_failed)
        assert all("injected fault" in reason for reason in h["errors"].values()), h["errors"]
        if bad not in expected_failed:
            assert list(h["rejected"]) == [str(bad)]
    assert sum(len(h["failed"]) for h in res["history"]) >= 1
    assert all(m["accuracy"] is not None for m in res["final"].values())


def test_timed_out_client_is_recorded_and_the_round_goes_on(tmp_path):
    from fl_sim.clients.faults import fault_for

    raw = tiny_raw(
        federation={"num_clients": 5, "rounds": 3, "round_timeout_s": 25, "faults": {"rate": 0.2, "kind": "timeout"}},
        attack={"num_malicious": 0},
    )
    s = scenario_of(raw, "t")
    expected = {r: [p for p in range(5) if fault_for(s, r, p)] for r in (1, 2, 3)}
    assert any(expected.values()), "pick a seed under which some client times out"
    out = tmp_path / "r"
    assert main(["run", _write(tmp_path, raw), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for h in res["history"][1:]:
        assert h["timed_out"] == expected[h["round"]]
        assert h["replied"] == [p for p in range(5) if p not in expected[h["round"]]]


def test_dropped_replies_are_recorded_and_left_out(tmp_path):
    from fl_sim.clients.faults import fault_for

    raw = tiny_raw(
        federation={"num_clients": 5, "rounds": 3, "faults": {"rate": 0.3, "kind": "drop"}}, attack={"num_malicious": 0}
    )
    s = scenario_of(raw, "t")
    expected = {r: [p for p in range(5) if fault_for(s, r, p)] for r in (1, 2, 3)}
    assert any(expected.values()), "pick a seed under which some reply is dropped"
    out = tmp_path / "r"
    assert main(["run", _write(tmp_path, raw), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for h in res["history"][1:]:
        assert h["dropped"] == expected[h["round"]]
        assert h["replied"] == [p for p in range(5) if p not in expected[h["round"]]]
        assert h["failed"] == [] and h["timed_out"] == []


def test_sampled_clients_run_on_cohort_slots(tmp_path):
    """6 clients, 3 per round: Flower runs 3 nodes and each round's message names the partition
    to train. FedAvg's recorded weights are the partitions' own sizes, so each node trained the
    client it was told to."""
    raw = tiny_raw(
        federation={"num_clients": 6, "rounds": 3, "fraction_train": 0.5, "min_train_clients": 3}, attack={"num_malicious": 0}
    )
    out = tmp_path / "r"
    assert main(["run", _write(tmp_path, raw), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    sizes = res["data"]["client_sizes"]
    cohorts = [h["cohort"] for h in res["history"][1:]]
    assert len({tuple(c) for c in cohorts}) > 1, "pick a seed whose cohorts differ between rounds"
    for h in res["history"][1:]:
        assert h["replied"] == h["cohort"] and len(h["cohort"]) == 3
        total = sum(sizes[p] for p in h["cohort"])
        assert {int(p): w for p, w in h["rule_weights"].items()} == pytest.approx({p: sizes[p] / total for p in h["cohort"]})


def test_error_summary_finds_the_raised_line():
    from fl_sim.server.replies import error_summary

    ray_text = (
        "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::ClientAppActor.run()\x1b[39m (pid=1)\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "fl_sim.clients.faults.InjectedFault: injected fault: client 2 fails in round 1\n"
    )
    assert error_summary(ray_text) == "InjectedFault: injected fault: client 2 fails in round 1"
    assert error_summary("The actor died unexpectedly\nmore") == "The actor died unexpectedly"
    assert error_summary("") == ""
