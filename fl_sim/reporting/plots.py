"""PNG plots: accuracy and ASR per precision across rounds, and the final model by precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: a caller's backend (a notebook's) is left alone


def _series(history: list[dict[str, Any]], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for h in history:
        for p, m in h["precisions"].items():
            if m.get(metric) is None:
                continue
            xs, ys = out.setdefault(p, ([], []))
            xs.append(h["round"])
            ys.append(100 * m[metric])
    return out


def _line_plot(path: Path, history: list[dict[str, Any]], metric: str, title: str) -> None:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for p, (xs, ys) in _series(history, metric).items():
        ax.plot(xs, ys, marker="o", label=p)
    ax.set_xlabel("round")
    ax.set_ylabel(f"{title} (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title + " of the global model per round")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _bar_plot(path: Path, final: dict[str, dict[str, Any]]) -> None:
    names = list(final)
    acc = [100 * (final[p]["accuracy"] or 0) for p in names]
    asr = [100 * (final[p]["backdoor_asr"] or 0) for p in names]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], acc, width=0.4, label="clean accuracy")
    ax.bar([x + 0.2 for x in xs], asr, width=0.4, label="backdoor ASR")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("final global model by precision")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_plots(run_dir: Path, results: dict[str, Any]) -> list[str]:
    """Write the plots; return their file names."""
    _line_plot(run_dir / "accuracy_per_round.png", results["history"], "accuracy", "clean accuracy")
    _line_plot(run_dir / "asr_per_round.png", results["history"], "backdoor_asr", "backdoor ASR")
    _bar_plot(run_dir / "final_by_precision.png", results["final"])
    return ["accuracy_per_round.png", "asr_per_round.png", "final_by_precision.png"]
