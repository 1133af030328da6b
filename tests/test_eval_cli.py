"""``fl-sim eval RUN_DIR``: protocols on a finished run's saved model, added to its outputs; bad
input is one line and exit 2."""

import json

import pytest
import yaml

from fl_sim.cli import main
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
    ],
)
def test_eval_bad_input(run_dir, capsys, argv_tail, expected):
    assert main(["eval", str(run_dir), *argv_tail]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a finished fl-sim run" in capsys.readouterr().err


def test_mitigation_protocol_measures_tacq_and_a_server_fine_tune(run_dir):
    argv = [
        "eval",
        str(run_dir),
        "--protocol",
        "mitigation",
        "--set",
        "evaluation.mitigation.finetune_steps=5",
        "--set",
        "evaluation.mitigation.keep=[0.01, 0.05]",
    ]
    assert main(argv) == 0
    res = json.loads((run_dir / "results.json").read_text())
    r = res["evaluation"]["mitigation"]["result"]
    assert set(r["uniform"]) == {"fp32", "int4"} and set(r["tacq"]["tacq4"]) == {"1%", "5%"}
    assert r["finetune"]["steps"] == 5 and r["finetune"]["examples"] == 64
    # The fine-tune really trains on the server's calibration set: the model changes.
    before, after = r["uniform"]["fp32"], r["fine_tuned"]["fp32"]
    assert (before["accuracy"], before["backdoor_asr"]) != (after["accuracy"], after["backdoor_asr"])
    assert "Deployment-time mitigations" in (run_dir / "report.md").read_text()


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
