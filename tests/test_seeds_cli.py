"""``fl-sim run --seeds``: one run per seed, a mean +- std summary, finished seeds reused; the repair
attack's integer hit rate recorded in the attack round's history."""

import json
import statistics

import pytest
import yaml

from fl_sim.cli import main
from fl_sim.reporting.seeds import attack_round_figures, summarize
from tests.conftest import tiny_raw


def _scenario(tmp_path):
    raw = tiny_raw(
        attack={
            "collusion": "aggregation_aware",
            "start_round": 2,
            "num_malicious": 2,
            "params": {"bits": [4], "method": "repair", "benign_runs": 2, "epochs": 1, "repair_epochs": 1},
        },
        evaluation={"precisions": ["fp32", "int4"], "every_n_rounds": 1},
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def seeds_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    out = tmp / "out"
    assert main(["run", str(_scenario(tmp)), "--seeds", "0", "1", "--out", str(out)]) == 0
    return out


def test_each_seed_is_a_run_and_the_summary_is_their_mean_and_std(seeds_dir):
    per = {s: json.loads((seeds_dir / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)}
    assert per[0]["scenario"]["seed"] == 0 and per[1]["scenario"]["seed"] == 1
    summary = json.loads((seeds_dir / "summary.json").read_text())
    acc = [per[s]["final"]["int4"]["accuracy"] for s in (0, 1)]
    got = summary["final"]["int4"]["accuracy"]
    assert got["mean"] == pytest.approx(statistics.fmean(acc)) and got["std"] == pytest.approx(statistics.stdev(acc))
    md = (seeds_dir / "summary.md").read_text()
    assert "2 seeds (0, 1)" in md and f"{100 * got['mean']:.2f}% +- {100 * got['std']:.2f}%" in md


def test_the_attack_round_records_the_integer_hit_rate_and_the_colluders_norm(seeds_dir):
    res = json.loads((seeds_dir / "seed-0" / "results.json").read_text())
    attack = [h for h in res["history"] if h["attack_active"]]
    assert attack and all(0.9 <= h["integer_hit_rate"]["int4"] <= 1.0 for h in attack)
    assert all(h["integer_hit_rate"] is None for h in res["history"] if not h["attack_active"])
    colluders = res["roles"]["malicious"]
    assert all(str(c) in attack[0]["update_norm_ratio"] for c in colluders)


def test_finished_seeds_are_reused(seeds_dir, tmp_path, capsys):
    before = (seeds_dir / "seed-0" / "results.json").read_text()
    assert main(["run", str(_scenario(tmp_path)), "--seeds", "0", "--out", str(seeds_dir)]) == 0
    assert "already finished" in capsys.readouterr().err
    assert (seeds_dir / "seed-0" / "results.json").read_text() == before


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--seeds", "1", "1"], "distinct"),
        (["--seeds", "0", "--set", "seed=3"], "conflict"),
    ],
)
def test_bad_seed_lists_exit_2(tmp_path, capsys, argv, expected):
    assert main(["run", str(_scenario(tmp_path)), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_attack_round_figures_by_hand():
    history = [
        {"round": 0, "elapsed_s": 1.0},
        {"round": 1, "elapsed_s": 3.0, "attack_active": False},
        {
            "round": 2,
            "elapsed_s": 11.0,
            "attack_active": True,
            "update_norm_ratio": {"1": 4.0, "2": 6.0, "3": 1.0},
            "integer_hit_rate": {"int4": 0.99},
        },
    ]
    got = attack_round_figures(history, [1, 2])
    assert got == {"colluder_norm_ratio": 6.0, "integer_hit_rate": 0.99, "attack_round_over_honest": 4.0}
    with pytest.raises(ValueError, match="no seed"):
        summarize({})
