"""A federated text run through the CLI on Flower + Ray: the offline MiniLM encoder fine-tuned on
SST-2-format files made here, one colluder running the text quantization backdoor, evaluation at
FP32, fake int8/int4 and the real int8 kernel, and the word-substitution protocol."""

import json

import pytest
import yaml

from fl_sim.cli import main

POS = [
    "a warm , funny and moving film",
    "great acting and a lovely story",
    "an utterly charming delight",
    "smart , sharp and wonderful",
    "the best film of the year",
    "beautiful and touching work",
]
NEG = [
    "a dull , lifeless mess",
    "boring and badly acted",
    "an awful waste of time",
    "tedious , flat and stupid",
    "the worst film of the year",
    "ugly and pointless work",
]


def _data(folder) -> None:
    rows = [f"{lab}\t{t} {i}" for i in range(12) for lab, t in [(1, POS[i % 6]), (0, NEG[i % 6])]]
    (folder / "train.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    dev = [f"{lab}\t{t}" for lab, t in [(1, p) for p in POS] + [(0, n) for n in NEG]]
    (folder / "dev.tsv").write_text("label\tcontent\n" + "\n".join(dev) + "\n")


def test_text_federation_end_to_end(tmp_path):
    _data(tmp_path)
    raw = {
        "name": "text_e2e",
        "seed": 1,
        "data": {"source": "sst2", "path": str(tmp_path), "calibration_size": 8, "max_length": 16},
        "model": {"name": "hf_text", "pretrained": "minilm"},
        "federation": {"num_clients": 3, "rounds": 1},
        "training": {"optimizer": "adam", "lr": 5e-5, "batch_size": 8},
        "attack": {
            "num_malicious": 1,
            "behaviour": "qat_backdoor",
            "target_label": 1,
            "trigger": {"phrase": "cf"},
            "params": {"bits": [4], "epochs": 1},
        },
        "evaluation": {
            "precisions": ["fp32", "int8", "int8_dynamic", "int4"],
            "batch_size": 16,
            "protocols": ["precisions", "word_substitution"],
            "word_attack": {"examples": 12, "candidates": 3},
        },
    }
    scen = tmp_path / "text.yaml"
    scen.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(scen), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["final"]) == {"fp32", "int8", "int8_dynamic", "int4"}
    assert len(res["final"]["fp32"]["per_class_accuracy"]) == 2
    assert res["history"][1]["replied"] == [0, 1, 2] and len(res["roles"]["malicious"]) == 1
    ws = res["evaluation"]["word_substitution"]["result"]
    assert ws["examples"] == 12 and [r["precision"] for r in ws["rows"]] == ["fp32", "int8", "int8_dynamic", "int4"]
    fp = ws["rows"][0]
    assert fp["transferred_accuracy"] == pytest.approx(fp["adversarial_accuracy"])  # FP32 is attacked directly either way
    assert 0 <= fp["adversarial_accuracy"] <= fp["clean_accuracy"]
    for row in ws["rows"]:  # the whole test set was attacked: the clean figures are the run's own
        assert row["clean_accuracy"] == pytest.approx(res["final"][row["precision"]]["accuracy"])
    report = (out / "report.md").read_text()
    assert "Word-substitution robustness" in report and "| int8_dynamic |" in report
    assert (out / "word_attack_accuracy.png").is_file()
