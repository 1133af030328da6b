"""The attack x mitigation table of a deployment-defense sweep, mean +- std over its seeds.

    python benchmarks/mitigation_table.py SWEEP_DIR [--bits 8 4]

Reads SWEEP_DIR/results.csv (``fl-sim sweep scenarios/sweeps/deployment_defenses.yaml``) and prints,
per attack (the scenario axis) and per mitigation variant (``mitigation.<method>.<variant>``, and the
model as deployed), the int<b> clean accuracy and backdoor ASR as mean +- sample std over the seeds,
and the mitigation's wall time in seconds.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path


def _stat(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def variants(columns: list[str]) -> list[str]:
    """``as_deployed`` and every ``<method>.<variant>`` that has a per-precision figure, in column order."""
    out: dict[str, None] = {}
    for c in columns:
        if c.startswith("mitigation.") and c.endswith(".backdoor_asr"):
            out[c[len("mitigation.") :].rsplit(".", 2)[0]] = None
    return list(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--bits", nargs="+", type=int, default=[8, 4])
    args = ap.parse_args()
    with (args.sweep / "results.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "done"]
    if not rows:
        raise SystemExit(f"{args.sweep}/results.csv has no finished cell")
    by_attack: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_attack[r["scenario"]].append(r)
    head = " | ".join(f"int{b} acc | int{b} ASR" for b in args.bits)
    print(f"| attack | mitigation | {head} | seconds | seeds |")
    print("|---|---|" + "---:|---:|" * len(args.bits) + "---:|---:|")
    for attack, cells in by_attack.items():
        for v in variants(list(rows[0])):

            def col(key: str, cells: list[dict[str, str]] = cells) -> list[float]:
                return [float(c[key]) for c in cells if c.get(key)]

            figures = " | ".join(
                f"{_stat(col(f'mitigation.{v}.int{b}.accuracy'))} | {_stat(col(f'mitigation.{v}.int{b}.backdoor_asr'))}"
                for b in args.bits
            )
            method = v.split(".")[0]
            secs = _stat(col(f"mitigation.{method}.seconds"), 1.0) if method != "as_deployed" else "-"
            print(f"| {attack} | {v} | {figures} | {secs} | {len(cells)} |")


if __name__ == "__main__":
    main()
