"""The worst case per defense over the attacks: values, where they occur, the summary section, the
heatmap's extra row, and the spec's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fl_sim.sweeps.heatmap import WORST_LABEL, with_worst
from fl_sim.sweeps.spec import SweepSpec
from fl_sim.sweeps.sweep import write_reports
from fl_sim.sweeps.worst_case import worst_axes, worst_case, worst_direction, worst_markdown

# accuracy, asr by (attack, defense); seeds 0 and 1 of (alie, krum) average to 0.4
VALUES = {
    ("alie", "fedavg", 0): (0.9, 0.01),
    ("ipm", "fedavg", 0): (0.2, 0.05),
    ("fang", "fedavg", 0): (0.5, 0.30),
    ("alie", "krum", 0): (0.3, 0.02),
    ("alie", "krum", 1): (0.5, 0.02),
    ("ipm", "krum", 0): (0.8, 0.10),
    ("fang", "krum", 0): (0.7, 0.03),
}


def _rows() -> list[dict]:
    rows = [
        {
            "cell": f"{a}-{d}-{s}",
            "status": "done",
            "scenario": a,
            "strategy.name": d,
            "seed": s,
            "fp32.accuracy": acc,
            "int4.backdoor_asr": asr,
            "timing.total_s": 10.0,
        }
        for (a, d, s), (acc, asr) in VALUES.items()
    ]
    rows.append({"cell": "x", "status": "failed", "scenario": "fang", "strategy.name": "krum", "seed": 1, "fp32.accuracy": 0.0})
    return rows


def test_direction_by_metric():
    assert worst_direction("fp32.accuracy") == "min" and worst_direction("detection.tpr") == "min"
    assert worst_direction("int4.backdoor_asr") == "max" and worst_direction("detection.fpr") == "max"
    assert worst_direction("timing.total_s") is None


def test_worst_value_and_where():
    acc = {w.per: (round(w.value, 6), w.at) for w in worst_case(_rows(), "strategy.name", "scenario", "fp32.accuracy")}
    assert acc == {"fedavg": (0.2, "ipm"), "krum": (0.4, "alie")}  # krum: the seed mean, the failed cell left out
    asr = {w.per: (w.value, w.at) for w in worst_case(_rows(), "strategy.name", "scenario", "int4.backdoor_asr")}
    assert asr == {"fedavg": (0.30, "fang"), "krum": (0.10, "ipm")}
    assert worst_case(_rows(), "strategy.name", "scenario", "timing.total_s") == []


def test_summary_section():
    lines = worst_markdown(_rows(), "strategy.name", "scenario", ["fp32.accuracy", "int4.backdoor_asr", "timing.total_s"])
    assert "## Worst case per strategy.name over scenario" in lines
    assert "| strategy.name | worst fp32.accuracy (%) | worst int4.backdoor_asr (%) |" in lines
    assert "| fedavg | 20.0 (ipm) | 30.0 (fang) |" in lines and "| krum | 40.0 (alie) | 10.0 (ipm) |" in lines


def test_heatmap_row_or_column():
    rows, cols, m = with_worst(["a", "b"], ["x", "y"], [[1.0, 2.0], [3.0, None]], [1.0, 2.0], as_row=True)
    assert rows == ["a", "b", WORST_LABEL] and m[-1] == [1.0, 2.0]
    rows, cols, m = with_worst(["a", "b"], ["x", "y"], [[1.0, 2.0], [3.0, None]], [1.0, 3.0], as_row=False)
    assert cols == ["x", "y", WORST_LABEL] and [line[-1] for line in m] == [1.0, 3.0]


def _spec(tmp_path: Path, **extra) -> SweepSpec:
    files = [str(tmp_path / f"{a}.yaml") for a in ("alie", "ipm", "fang")]
    return SweepSpec(
        name="w",
        scenario=files,
        grid={"strategy.name": ["fedavg", "krum"], "seed": [0, 1]},
        metrics=["fp32.accuracy", "int4.backdoor_asr"],
        heatmaps=[{"rows": "scenario", "cols": "strategy.name", "metric": "fp32.accuracy"}],
        **extra,
    )


def test_reports_carry_the_worst_case(tmp_path: Path):
    spec = _spec(tmp_path)
    assert worst_axes(spec) == ("strategy.name", "scenario")
    names = write_reports(spec, _rows(), tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "| fedavg | 20.0 (ipm) | 30.0 (fang) |" in text
    png = tmp_path / names[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spec_checks_the_worst_case_axes(tmp_path: Path):
    with pytest.raises(ValidationError, match="worst_case.per: 'bits' is not an axis"):
        _spec(tmp_path, worst_case={"per": "bits"})
    with pytest.raises(ValidationError, match="per and over are both"):
        _spec(tmp_path, worst_case={"per": "seed", "over": "seed"})
    one = SweepSpec(name="o", scenario=str(tmp_path / "a.yaml"), grid={"strategy.name": ["fedavg"]})
    assert worst_axes(one) is None  # a single scenario file: no attack axis
