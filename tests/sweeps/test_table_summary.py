"""Results -> rows -> CSV, the mean and std over seeds, the Markdown summary and the heatmaps."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from fl_sim.sweeps.grid import Cell
from fl_sim.sweeps.heatmap import draw_heatmap, heatmap_matrix
from fl_sim.sweeps.spec import HeatmapSpec, SweepSpec
from fl_sim.sweeps.summary import format_value, render_markdown, summarize
from fl_sim.sweeps.table import cell_row, flatten_results, write_table

RESULTS = {
    "final": {
        "fp32": {
            "accuracy": 0.9,
            "per_class_accuracy": [0.8, 1.0],
            "backdoor_asr": 0.005,
            "target_class_accuracy": 0.97,
            "target_sample_success": None,
            "disagreement": 0.0,
        },
        "int8": {"accuracy": 0.89, "per_class_accuracy": [0.8, 0.98], "backdoor_asr": 0.5, "disagreement": 1},
    },
    "detection": {
        "tpr": 0.0,
        "fpr": 0.575,
        "malicious_replies": 10,
        "flagged_malicious": 0,
        "honest_replies": 40,
        "flagged_honest": 23,
        "rule_decides": True,
        "per_round": [1, 2],
    },
    "timing": {"federation_s": 37.4, "total_s": 42.3},
    "history": [{"round": 1}],
}
CELL = Cell(
    id="a__attack.params.bits=-8,-4-__seed=0",
    axes={"attack.params.bits": [8, 4], "seed": 0},
    scenario="/x/a.yaml",
    overrides=["attack.params.bits=[8, 4]", "seed=0"],
)


def test_flatten_results_keeps_scalars() -> None:
    flat = flatten_results(RESULTS)
    assert flat == {
        "fp32.accuracy": 0.9,
        "fp32.backdoor_asr": 0.005,
        "fp32.target_class_accuracy": 0.97,
        "fp32.target_sample_success": None,
        "fp32.disagreement": 0.0,
        "int8.accuracy": 0.89,
        "int8.backdoor_asr": 0.5,
        "int8.disagreement": 1.0,
        "detection.tpr": 0.0,
        "detection.fpr": 0.575,
        "detection.malicious_replies": 10.0,
        "detection.flagged_malicious": 0.0,
        "detection.honest_replies": 40.0,
        "detection.flagged_honest": 23.0,
        "detection.rule_decides": 1.0,
        "timing.federation_s": 37.4,
        "timing.total_s": 42.3,
    }
    assert all(v is None or type(v) is float for v in flat.values())
    assert flatten_results({}) == {}
    assert flatten_results({"final": {"fp32": {"accuracy": 1}}}) == {"fp32.accuracy": 1.0}


def test_cell_row_and_csv(tmp_path: Path) -> None:
    done = cell_row(CELL, "done", RESULTS)
    assert list(done)[:5] == ["cell", "attack.params.bits", "seed", "status", "error"]
    assert done["attack.params.bits"] == "[8, 4]" and done["seed"] == 0 and done["error"] == ""
    assert done["int8.accuracy"] == 0.89
    failed = cell_row(CELL, "failed", None, "boom, it broke")
    assert failed == {"cell": CELL.id, "attack.params.bits": "[8, 4]", "seed": 0, "status": "failed", "error": "boom, it broke"}
    path = tmp_path / "results.csv"
    write_table([failed, done], path)
    with path.open(newline="", encoding="utf-8") as fh:
        read = list(csv.DictReader(fh))
    assert list(read[0])[:5] == ["cell", "attack.params.bits", "seed", "status", "error"]
    assert read[0]["error"] == "boom, it broke" and read[0]["fp32.accuracy"] == ""
    assert read[1]["fp32.target_sample_success"] == ""
    assert float(read[1]["fp32.backdoor_asr"]) == 0.005
    third = 1 / 3
    write_table([{**done, "fp32.accuracy": third}], path)
    assert repr(third) in path.read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def _row(strategy: str, bits: int, seed: int, acc: float | None, status: str = "done", **extra: float) -> dict:
    return {
        "cell": f"{strategy}-{bits}-{seed}",
        "strategy.name": strategy,
        "bits": bits,
        "seed": seed,
        "status": status,
        "error": "" if status == "done" else "it broke",
        "int8.accuracy": acc,
        **extra,
    }


ROWS = [
    _row("fedavg", 8, 0, 0.90, **{"timing.total_s": 40.0}),
    _row("fedavg", 8, 1, 0.80, **{"timing.total_s": 44.0}),
    _row("fedavg", 8, 2, 0.95, **{"timing.total_s": 1234.5}),
    _row("fedavg", 4, 0, 0.50),
    _row("fedavg", 4, 1, None, status="failed"),
    _row("krum", 8, 0, 0.70),
    _row("krum", 8, 1, 0.60),
    _row("krum", 4, 0, None),
    _row("krum", 4, 1, 0.99, status="failed"),
]
AXES = ["strategy.name", "bits", "seed"]


def test_summarize_mean_and_sample_std() -> None:
    out = summarize(ROWS, AXES, ["int8.accuracy", "timing.total_s"])
    assert [(g["strategy.name"], g["bits"]) for g in out] == [("fedavg", 8), ("fedavg", 4), ("krum", 8), ("krum", 4)]
    first = out[0]["int8.accuracy"]
    assert first["n"] == 3
    assert first["mean"] == pytest.approx(np.mean([0.9, 0.8, 0.95]))
    assert first["std"] == pytest.approx(np.std([0.9, 0.8, 0.95], ddof=1))
    assert out[0]["timing.total_s"]["std"] == pytest.approx(np.std([40.0, 44.0, 1234.5], ddof=1))
    assert out[1]["int8.accuracy"] == {"mean": 0.5, "std": None, "n": 1}  # the failed seed is left out
    assert out[2]["int8.accuracy"]["std"] == pytest.approx(np.std([0.7, 0.6], ddof=1))
    assert out[3]["int8.accuracy"] == {"mean": None, "std": None, "n": 0}
    assert out[3]["timing.total_s"] == {"mean": None, "std": None, "n": 0}
    assert "seed" not in out[0]


def test_summarize_without_replicate_axis_keeps_every_point() -> None:
    out = summarize(ROWS, AXES, ["int8.accuracy"], replicate="none")
    assert len(out) == 7  # done rows only, each its own group
    assert out[0]["seed"] == 0 and out[0]["int8.accuracy"] == {"mean": 0.9, "std": None, "n": 1}


def test_format_value() -> None:
    assert format_value("int8.accuracy", 0.91234) == "91.2"
    assert format_value("detection.fpr", 0.575) == "57.5"
    assert format_value("timing.total_s", 42.345) == "42.3"
    assert format_value("timing.total_s", 1234.5) == "1230"
    assert format_value("fp32.disagreement", 0.012345) == "0.0123"
    assert format_value("x", 0.0) == "0"


def test_render_markdown(tmp_path: Path) -> None:
    spec = SweepSpec(
        name="demo",
        scenario=str(tmp_path / "a.yaml"),
        grid={"strategy.name": ["fedavg", "krum"], "bits": [8, 4], "seed": [0, 1, 2]},
        metrics=["int8.accuracy", "timing.total_s"],
    )
    summary = summarize(ROWS, AXES, spec.metrics)
    text = render_markdown(spec, ROWS, summary, ["int8_accuracy.png"])
    mean, std = np.mean([0.9, 0.8, 0.95]) * 100, np.std([0.9, 0.8, 0.95], ddof=1) * 100
    assert text.startswith("# Sweep demo\n")
    assert "9 cells: 7 done, 2 failed." in text
    assert "| strategy.name | bits | int8.accuracy (%) | timing.total_s |" in text
    assert f"| fedavg | 8 | {mean:.1f} ± {std:.1f} (3) | 440 ± 688 (3) |" in text
    assert "| fedavg | 4 | 50.0 (1) | n/a |" in text
    assert "| krum | 4 | n/a | n/a |" in text
    assert "## Failed cells" in text and "- `fedavg-4-1`: it broke" in text
    assert "![int8_accuracy.png](int8_accuracy.png)" in text
    ok = render_markdown(spec, ROWS[:1], summarize(ROWS[:1], AXES, spec.metrics), [])
    assert "Failed cells" not in ok and "Heatmaps" not in ok and "1 cells: 1 done, 0 failed." in ok


def test_heatmap_matrix_averages_over_seeds_and_other_axes() -> None:
    rows = ROWS + [_row("fedavg", 8, 0, 0.2, **{"other": 1})]
    rows[-1]["cell"] = "extra"
    labels_r, labels_c, matrix = heatmap_matrix(rows, "strategy.name", "bits", "int8.accuracy")
    assert (labels_r, labels_c) == (["fedavg", "krum"], ["8", "4"])
    assert matrix[0][0] == pytest.approx(np.mean([0.9, 0.8, 0.95, 0.2]))
    assert matrix[0][1] == pytest.approx(0.5)  # the failed seed is left out
    assert matrix[1][0] == pytest.approx(0.65)
    assert matrix[1][1] is None  # one done seed without a value, one failed
    assert math.isfinite(matrix[0][0])


def test_draw_heatmap_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "acc.png"
    draw_heatmap(ROWS, HeatmapSpec(rows="strategy.name", cols="bits", metric="int8.accuracy"), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    other = tmp_path / "time.png"
    draw_heatmap(ROWS, HeatmapSpec(rows="bits", cols="seed", metric="timing.total_s", title="time"), other)
    assert other.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.png", "time.png"]


def test_flatten_results_takes_the_mitigation_and_prerelease_figures() -> None:
    metrics = {"accuracy": 0.9, "backdoor_asr": 0.03, "target_class_accuracy": None}
    results = {
        "evaluation": {
            "mitigation": {
                "seconds": 5.0,
                "result": {
                    "as_deployed": {"int4": {"accuracy": 0.91, "backdoor_asr": 0.99}},
                    "methods": {"efrap": {"rows": {"flip=20%": {"int4": metrics}}, "data": {"labels": False}, "seconds": 2.5}},
                },
            },
            "prerelease": {"result": {"score": 0.7, "flagged": True, "probe": {"0,0": 0.7}}},
        }
    }
    assert flatten_results(results) == {
        "mitigation.as_deployed.int4.accuracy": 0.91,
        "mitigation.as_deployed.int4.backdoor_asr": 0.99,
        "mitigation.efrap.seconds": 2.5,
        "mitigation.efrap.flip=20%.int4.accuracy": 0.9,
        "mitigation.efrap.flip=20%.int4.backdoor_asr": 0.03,
        "mitigation.efrap.flip=20%.int4.target_class_accuracy": None,
        "prerelease.score": 0.7,
        "prerelease.flagged": 1.0,
    }
