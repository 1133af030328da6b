"""Bad input: one line naming the problem, exit code 2, no traceback, no run directory."""

from pathlib import Path

import pytest

from fl_sim.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICK = str(REPO / "scenarios" / "quickstart.yaml")

CASES = [
    ("name: x\nfoo: 1\n", [], "unknown key 'foo'"),
    ("name: x\nfederation: {num_clients: ten}\n", [], "federation.num_clients"),
    ("name: x\nfederation: [1, 2\n", [], "malformed YAML"),
    ("name: x\nfederation: {num_clients: 3}\nattack: {num_malicious: 5}\n", [], "num_malicious (5) is more than"),
    ("name: x\nevaluation: {precisions: [fp32, int17]}\n", [], "bits must be in 2..16"),
    ("name: x\nevaluation: {precisions: [fp32, int1]}\n", [], "bits must be in 2..16"),
    ("name: x\nattack: {params: {bits: [8, 1]}}\n", [], "params.bits"),
    ("name: x\ntraining: {qat: {bits: 20}}\n", [], "training.qat.bits"),
    ("name: x\ndata: {source: idx, path: /nonexistent/mnist}\n", [], "folder not found"),
    ("name: x\nstrategy: {name: nosuch}\n", [], "unknown strategy 'nosuch'"),
    ("name: x\nattack: {behaviour: honest}\n", [], "not an attack"),
    ("- just\n- a list\n", [], "must be a YAML mapping"),
    ("name: x\n", ["federation.rounds=0"], "federation.rounds"),
    ("name: x\n", ["federation"], "--set expects dotted.key=value"),
    ("name: x\nfederation: {num_clients: 10}\nattack: {num_malicious: 3}\nstrategy: {name: bulyan}\n", [], "4f+3"),
    ("schema_version: 2\nname: x\n", [], "schema_version"),
    ("name: ''\n", [], "name"),
    ("seed: 1\n", [], "missing key 'name'"),
    ("name: x\nseed: -1\n", [], "seed"),
    ("name: x\ndata: {source: cifar100}\n", [], "unknown dataset 'cifar100'"),
    ("name: x\ndata: {partitioner: shards}\n", [], "data.partitioner"),
    ("name: x\ndata: {alpha: 0}\n", [], "data.alpha"),
    ("name: x\nmodel: {name: resnet999}\n", [], "unknown model 'resnet999'"),
    ("name: x\nfederation: {fraction_train: 0}\n", [], "federation.fraction_train"),
    ("name: x\nfederation: {num_clients: 4, min_train_clients: 5}\n", [], "min_train_clients"),
    ("name: x\ntraining: {optimizer: rmsprop}\n", [], "training.optimizer"),
    ("name: x\ntraining: {lr: -0.1}\n", [], "training.lr"),
    ("name: x\nattack: {collusion: telepathic}\n", [], "attack.collusion"),
    ("name: x\nattack: {start_round: 4, stop_round: 2}\n", [], "stop_round 2 is before start_round 4"),
    ("name: x\nattack: {behaviour: nosuch}\n", [], "unknown behaviour 'nosuch'"),
    ("name: x\nattack: {trigger: {size: 0}}\n", [], "attack.trigger.size"),
    ("name: x\nevaluation: {precisions: []}\n", [], "evaluation.precisions"),
    ("name: x\nevaluation: {precisions: [fp32, fp32]}\n", [], "repeat"),
    ("name: x\nevaluation: {precisions: [float8]}\n", [], "unknown precision 'float8'"),
    ("name: x\nevaluation: {device: tpu}\n", [], "evaluation.device"),
    ("name: x\nevaluation: {granularity: per_row}\n", [], "evaluation.granularity"),
    ("name: x\nstrategy: {name: fedtrimmedavg, params: {beta: 0.7}}\n", [], "params.beta"),
    ("name: x\n", ["attack.params.bits=[8, 40]"], "params.bits"),
    ("name: x\nevaluation: {protocols: [nosuch]}\n", [], "unknown protocol 'nosuch'"),
    ("name: x\nevaluation: {observer: median}\n", [], "evaluation.observer"),
    ("name: x\nevaluation: {precisions: [tacq9]}\n", [], "bits must be in 2..8"),
    ("name: x\nevaluation: {worst_case: {draws: 0}}\n", [], "evaluation.worst_case.draws"),
    ("name: x\nevaluation: {worst_case: {distributions: [weird]}}\n", [], "evaluation.worst_case.distributions"),
    ("name: x\nevaluation: {robustness: {epsilons: [2.0]}}\n", [], "epsilons must be in (0, 1]"),
    ("name: x\nevaluation: {tacq_keep: 1.5}\n", [], "evaluation.tacq_keep"),
    ("name: x\nattack: {params: {max_norm_ratio: 0.5}}\n", [], "params.max_norm_ratio"),
    ("name: x\n", ["federation.num_clients=[oops"], "not valid YAML"),
    ("name: x\n", ["seed.deeper=1"], "seed: Input should be a valid integer"),
    ("name: x\n", ["=3"], "--set expects dotted.key=value"),
    ("\tname: x\n", [], "malformed YAML"),
]


@pytest.mark.parametrize("text,sets,expected", CASES)
def test_bad_scenario_exits_2_with_one_line(tmp_path, capsys, text, sets, expected):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    out_dir = tmp_path / "run"
    argv = ["run", str(f), "--out", str(out_dir)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert expected in err
    assert not out_dir.exists() and not list(tmp_path.glob(".run*"))


CLI_CASES = [
    (["run"], "needs a scenario file"),
    (["frobnicate"], "invalid choice"),
    (["list", "widgets"], "invalid choice"),
    (["run", QUICK, "--resume", "/tmp/x"], "--resume takes only the run directory"),
    (["run", QUICK, "--bogus-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv,expected", CLI_CASES)
def test_bad_command_line_exits_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err


def test_binary_scenario_file(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_bytes(bytes(range(256)))
    assert main(["validate", str(f)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_missing_scenario_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "scenario file not found" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    assert main(["run", QUICK, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_missing_idx_folder_given_by_override(capsys, tmp_path):
    assert (
        main(["run", QUICK, "--set", "data.source=idx", "--set", f"data.path={tmp_path / 'gone'}", "--out", str(tmp_path / "r")])
        == 2
    )
    assert "folder not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kind", ["attacks", "strategies", "preaggregators", "datasets", "models", "quantizers", "protocols", "mitigations"]
)
def test_list_prints_registered(kind, capsys):
    assert main(["list", kind]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 1


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("preaggregators", ["nnm", "bucketing", "arc"]),
        ("strategies", ["meamed", "mda", "monna"]),
        ("attacks", ["optimal_alie", "optimal_ipm", "fang"]),
    ],
)
def test_list_names_the_adaptive_attacks_rules_and_preaggregators(kind, names, capsys):
    assert main(["list", kind]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.strip().splitlines()}
    assert set(names) <= listed


def test_validate_prints_resolved_scenario(capsys):
    assert main(["validate", QUICK]) == 0
    assert "valid (schema version 1)" in capsys.readouterr().out
