"""``fl-sim eval RUN_DIR``: protocols on a finished run's saved model, added to its outputs; bad
input is one line and exit 2."""

import json

import pytest
import yaml

from fl_sim.cli import main
from fl_sim.errors import UserError
from tests.conftest import tiny_raw


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evalrun")
    scen = tmp / "tiny.yaml"
    scen.write_text(
        yaml.safe_dump(tiny_raw(evaluation={"precisions": ["fp32", "int8", "int4"], "protocols": ["precisions", "kernel_check"]}))
    )
    out = tmp / "run"
    assert main(["run", str(scen), "--out", str(out)]) == 0
    return out


def test_run_with_extra_protocols_records_them(run_dir):
    res = json.loads((run_dir / "results.json").read_text())
    kc = res["evaluation"]["kernel_check"]["result"]
    assert kc["prediction_agreement"] > 0.99 and kc["mean_abs_logit_diff"] < 1e-3 * kc["mean_abs_logit_fp32"]
    assert "Real int8 kernel" in (run_dir / "report.md").read_text()
    assert res["final"]["int8"]["disagreement"] >= 0.0


def test_eval_adds_protocol_sections_plots_and_keeps_final(run_dir, capsys):
    before = json.loads((run_dir / "results.json").read_text())
    argv = [
        "eval",
        str(run_dir),
        "--protocol",
        "worst_case",
        "--protocol",
        "robustness",
        "--protocol",
        "precisions",
        "--protocol",
        "data_free",
        "--set",
        "evaluation.data_free.steps=3",
        "--set",
        "evaluation.data_free.samples=32",
        "--set",
        "evaluation.worst_case.draws=4",
        "--set",
        "evaluation.worst_case.sizes=[16]",
        "--set",
        "evaluation.worst_case.client_examples=20",
        "--set",
        "evaluation.robustness.examples=40",
        "--set",
        "evaluation.robustness.pgd_steps=2",
        "--set",
        "evaluation.robustness.epsilons=[0.3]",
        "--set",
        "evaluation.precisions=[fp32, bf16, int8, int4, int2, tacq2]",
    ]
    assert main(argv) == 0
    res = json.loads((run_dir / "results.json").read_text())
    assert res["final"] == before["final"] and res["history"] == before["history"]
    ev = res["evaluation"]
    assert {"kernel_check", "worst_case", "robustness", "precisions", "data_free"} <= set(ev)
    df = ev["data_free"]["result"]["rows"]
    assert [r["precision"] for r in df] == ["int8", "int4", "int2"]
    assert all(0 <= r["accuracy"]["data_free_calibration"] <= 1 and 0 <= r["disagreement"]["probe_samples"] <= 1 for r in df)
    wc = ev["worst_case"]["result"]
    assert set(wc["summary"]) == {"int8", "int4", "int2", "tacq2"}  # no calibration for fp32 / bf16
    assert [d["distribution"] for d in wc["draws"] if d["precision"] == "int4"] == [
        "in_distribution",
        "imbalanced",
        "corrupted",
        "client",
    ]
    assert all(len(d["client_drop"]) == 4 and len(d["class_drop"]) == 10 for d in wc["draws"])
    rows = ev["robustness"]["result"]["rows"]
    assert {(r["attack"], r["precision"]) for r in rows} >= {("pgd", "int4"), ("fgsm", "fp32")}
    fp_rows = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["direct_accuracy"] <= r["clean_accuracy"] for r in fp_rows)
    assert ev["precisions"]["result"]["int2"]["disagreement"] > ev["precisions"]["result"]["int8"]["disagreement"]
    for f in ("by_bit_width.png", "worst_case_class_drop.png", "adversarial_accuracy.png"):
        assert (run_dir / f).is_file(), f
    report = (run_dir / "report.md").read_text()
    assert "Worst-case PTQ" in report and "Adversarial robustness" in report and "Data-free calibration" in report


@pytest.mark.parametrize(
    "argv_tail,expected",
    [
        (["--set", "federation.rounds=3"], "eval may only change evaluation.*"),
        (["--protocol", "nosuch"], "unknown protocol 'nosuch'"),
        (["--set", "evaluation.worst_case.draws=0"], "evaluation.worst_case.draws"),
        (["--protocol", "prerelease", "--set", "evaluation.prerelease.patch=40"], "does not fit a 28x28 image"),
        (["--protocol", "mitigation", "--set", "evaluation.mitigation.methods=[efrap, nosuch]"], "nosuch"),
        (["--set", "evaluation.mitigation.requantize=[per_row]"], "evaluation.mitigation.requantize"),
    ],
)
def test_eval_bad_input(run_dir, capsys, argv_tail, expected):
    assert main(["eval", str(run_dir), *argv_tail]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a finished fl-sim run" in capsys.readouterr().err


def test_mitigation_protocol_runs_every_named_defense_and_reports_it(run_dir):
    argv = [
        "eval",
        str(run_dir),
        "--protocol",
        "mitigation",
        "--set",
        "evaluation.mitigation.finetune_steps=5",
        "--set",
        "evaluation.mitigation.keep=[0.01, 0.05]",
        "--set",
        "evaluation.mitigation.noise={sigmas: [0.25], draws: 2}",
        "--set",
        "evaluation.mitigation.efrap.steps=5",
        "--set",
        "evaluation.mitigation.requantize=[per_channel, adaround]",
    ]
    assert main(argv) == 0
    res = json.loads((run_dir / "results.json").read_text())
    r = res["evaluation"]["mitigation"]["result"]
    assert set(r["as_deployed"]) == {"fp32", "int8", "int4"}
    m = r["methods"]
    assert list(m) == ["tacq", "finetune", "noise", "efrap", "lac", "requantize"]
    assert set(m["tacq"]["rows"]) == {"keep=1%", "keep=5%"} and set(m["tacq"]["rows"]["keep=1%"]) == {"int8", "int4"}
    assert set(m["requantize"]["rows"]) == {"per_channel", "adaround"}
    assert m["noise"]["rows"]["sigma=0.25"]["int4"]["draws"] == 2
    assert m["efrap"]["data"] == {"calibration_examples": 64, "labels": False}
    assert m["finetune"]["data"]["labels"] is True and all(e["seconds"] >= 0 for e in m.values())
    # The fine-tune really trains on the server's calibration set: the model changes.
    before, after = r["as_deployed"]["fp32"], m["finetune"]["rows"]["steps=5"]["fp32"]
    assert (before["accuracy"], before["backdoor_asr"]) != (after["accuracy"], after["backdoor_asr"])
    report = (run_dir / "report.md").read_text()
    assert "Deployment-time mitigations" in report and "| efrap | flip=20% | int4 |" in report


def test_prerelease_check_records_a_verdict_in_results_and_report(run_dir):
    argv = ["eval", str(run_dir), "--protocol", "prerelease", "--set", "evaluation.prerelease={steps: 3, positions_per_side: 2}"]
    assert main(argv) == 0
    res = json.loads((run_dir / "results.json").read_text())
    pr = res["evaluation"]["prerelease"]
    res = pr["result"]
    assert res["probe_score"] == max(res["probe"].values()) and res["noise_score"] == max(res["noise_patch"].values())
    assert pr["score"] == max(res["probe_score"], res["noise_score"]) and pr["flagged"] == (pr["score"] >= 0.5)
    assert len(pr["result"]["probe"]) == 4 and pr["result"]["examples"] == {"optimised_on": 32, "scored_on": 32}
    assert "**Verdict:" in (run_dir / "report.md").read_text()


def test_eval_rounding_margin_section_plot_and_sigma_keys(run_dir):
    argv = [
        "eval",
        str(run_dir),
        "--protocol",
        "rounding_margin",
        "--set",
        "evaluation.rounding_margin.draws=2",
        "--set",
        "evaluation.rounding_margin.sigmas=[0.000001, 0.25]",
    ]
    assert main(argv) == 0
    res = json.loads((run_dir / "results.json").read_text())
    rm = res["evaluation"]["rounding_margin"]
    r = rm["result"]
    assert set(r["sigmas"]) == {"1e-06", "0.25"} and rm["1e-06"] == r["sigmas"]["1e-06"]  # sigma keys at the top too
    for p in ("int8", "int4"):
        tiny = r["sigmas"]["1e-06"][p]
        # A millionth of a step moves no weight across a boundary: the unperturbed figures, in every draw.
        assert tiny["accuracy"]["mean"] == pytest.approx(r["unperturbed"][p]["accuracy"])
        assert tiny["accuracy"]["worst"] == tiny["accuracy"]["best"]
        layers = r["boundary_distance"][p]["layers"]
        assert all(sum(d["counts"]) > 0 and 0 <= d["within"]["0.1"] <= 1 for d in layers.values())
    assert set(r["quantizer_variants"]) == {"as_configured", "per_channel", "asymmetric_weights", "percentile_observer"}
    assert r["quantizer_variants"]["as_configured"]["int4"] == r["unperturbed"]["int4"]
    assert "Rounding margin" in (run_dir / "report.md").read_text()
    assert (run_dir / "rounding_margin.png").is_file()


def test_rounding_margin_needs_an_int_precision(run_dir, capsys):
    argv = ["eval", str(run_dir), "--protocol", "rounding_margin", "--set", "evaluation.precisions=[fp32, bf16]"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs an int<b> precision" in err[0]


def test_bring_up_to_date_runs_only_the_new_or_changed_protocols(run_dir):
    from fl_sim.reevaluate import bring_up_to_date

    before = json.loads((run_dir / "results.json").read_text())
    evaluation = {**before["scenario"]["evaluation"]}
    evaluation["protocols"] = [*evaluation["protocols"], "rounding_margin"]
    evaluation["rounding_margin"] = {**evaluation["rounding_margin"], "draws": 1, "sigmas": [0.5]}
    names = bring_up_to_date(run_dir, evaluation)
    # kernel_check ran under these very settings; precisions last ran under an eval's other precisions (above).
    assert names[-1] == "rounding_margin" and "kernel_check" not in names
    after = json.loads((run_dir / "results.json").read_text())
    assert after["scenario"]["evaluation"]["protocols"][-1] == "rounding_margin" and after["final"] == before["final"]
    assert after["evaluation"]["kernel_check"] == before["evaluation"]["kernel_check"]  # not rerun
    assert bring_up_to_date(run_dir, evaluation) == []  # now up to date
    with pytest.raises(UserError, match="evaluation.precisions differs"):
        bring_up_to_date(run_dir, {**evaluation, "precisions": ["fp32"]})
