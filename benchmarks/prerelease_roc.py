"""How well the pre-release check separates quantization-conditioned backdoors from clean models.

    python benchmarks/prerelease_roc.py SWEEP_DIR [SWEEP_DIR ...] [--positive STEM ...] [--target-fpr 0.05]

Reads ``prerelease.score`` of every finished cell of the given sweep directories (e.g. those of
scenarios/sweeps/deployment_defenses.yaml and prerelease_roc.yaml). A cell is positive when its
scenario's file stem is one of ``--positive`` (default: the quantization-conditioned attacks
qat_backdoor, qat_backdoor_repair, qat_rounding); every other cell (no attack, FP32 backdoors) is
negative: the check looks for a model whose quantized twin departs from it, which an FP32 backdoor
is not. Prints each cell's score, the ROC curve's points, its AUC, the TPR at the largest threshold
whose FPR is at most ``--target-fpr``, and the configured threshold's TPR / FPR.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

POSITIVE = ("qat_backdoor", "qat_backdoor_repair", "qat_rounding")


def roc(pos: list[float], neg: list[float]) -> list[tuple[float, float, float]]:
    """(threshold, FPR, TPR) for "flag when score >= threshold", at every distinct score, highest first."""
    out = [(float("inf"), 0.0, 0.0)]
    for t in sorted(set(pos + neg), reverse=True):
        out.append((t, sum(s >= t for s in neg) / len(neg), sum(s >= t for s in pos) / len(pos)))
    return out


def auc(pos: list[float], neg: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting one half (the ROC curve's area)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def cells(sweep_dirs: list[Path]) -> list[tuple[str, str, float, bool, float]]:
    """(cell id, scenario stem, score, flagged, threshold) of every finished cell with a prerelease section."""
    rows = []
    for d in sweep_dirs:
        for path in sorted((d / "cells").glob("*/results.json")):
            r = json.loads(path.read_text())
            pr = (r.get("evaluation") or {}).get("prerelease")
            if pr is None:
                continue
            cell = path.parent.name
            res = pr["result"]
            # The score is the larger split of the optimised and the noise patch (results written before
            # the protocol took the max recorded the optimised patch's alone; both figures are stored).
            score = max(res["score"], res["noise_score"])
            rows.append((cell, cell.split("__")[0], score, score >= res["threshold"], res["threshold"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    ap.add_argument("--positive", nargs="+", default=list(POSITIVE))
    ap.add_argument("--target-fpr", type=float, default=0.05)
    args = ap.parse_args()
    rows = cells(args.sweeps)
    pos = [s for _, stem, s, _, _ in rows if stem in args.positive]
    neg = [s for _, stem, s, _, _ in rows if stem not in args.positive]
    if not pos or not neg:
        raise SystemExit(f"need positive and negative cells with a prerelease section; found {len(pos)} and {len(neg)}")
    print("| cell | class | score | flagged |\n|---|---|---:|---|")
    for cell, stem, s, flagged, _ in sorted(rows, key=lambda r: -r[2]):
        print(f"| {cell} | {'positive' if stem in args.positive else 'negative'} | {100 * s:.1f}% | {flagged} |")
    curve = roc(pos, neg)
    best = max((p for p in curve if p[1] <= args.target_fpr), key=lambda p: p[2])
    threshold = rows[0][4]
    print(f"\n{len(pos)} positive, {len(neg)} negative models; ROC AUC {auc(pos, neg):.3f}")
    print("ROC points (threshold, FPR, TPR): " + ", ".join(f"({t:.3f}, {f:.2f}, {r:.2f})" for t, f, r in curve[1:]))
    print(f"TPR at FPR <= {args.target_fpr:g}: {best[2]:.3f} (threshold {best[0]:.3f}, FPR {best[1]:.3f})")
    tpr = sum(s >= threshold for s in pos) / len(pos)
    fpr = sum(s >= threshold for s in neg) / len(neg)
    print(f"configured threshold {threshold:g}: TPR {tpr:.3f}, FPR {fpr:.3f}")


if __name__ == "__main__":
    main()
