"""How many int4 roundings can colluders flip while staying inside the honest clients' own spread, per layer and per rule.

    python benchmarks/rounding_reach.py [--scenario scenarios/attacks/qat_rounding.yaml] [--seed 0] [--bits 4]
                                        [--data-path DIR]

Runs the scenario's honest warm-up (rounds 1 .. start_round - 1, through ``fl-sim run``), then the
attack round's real honest updates (``run_client`` for every honest client), and measures on the
honest aggregate H's grid, per quantized layer:

- ``within sigma``: the share of weights whose distance to their nearest rounding boundary is at most
  the honest clients' per-weight spread (std over the honest updates);
- per rule, the share of weights whose rounding the k colluders can flip with each of their
  coordinates inside the honest range of that coordinate (what a coordinate-wise look at the
  updates cannot tell from an honest one): the median and trimmed mean move only between the
  honest order statistics (computed exactly, as an omniscient adversary would); a mean moves by
  k/n of the colluders' offset (Krum: the whole offset, as it returns the submission itself).

The colluders' ids and the honest clients come from the scenario's seed. Prints one table, one row
per layer and a total row.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from fl_sim.clients.repair import quantized_weight_names
from fl_sim.clients.rule_models import Statistic, order_aggregate
from fl_sim.clients.runtime import run_client
from fl_sim.data.federated import federated_data
from fl_sim.models import build_model
from fl_sim.quantization.intervals import WeightQuantizer, boundary_distance, quant_grid
from fl_sim.quantization.rounding import positions
from fl_sim.wiring import load

RULES = ("fedavg", "krum", "fedmedian", "fedtrimmedavg")


def _warm_global(scenario: Path, rounds: int, overrides: list[str]) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as out:
        cmd = ["fl-sim", "run", str(scenario), "--set", f"federation.rounds={rounds}", "--set", f"output_dir={out}"]
        cmd += [a for o in overrides for a in ("--set", o)] + ["--set", "evaluation.precisions=[fp32]"]
        subprocess.run(cmd, check=True, capture_output=True)
        return load_file(str(next(Path(out).glob("*/global_model.safetensors"))))


def _reach(rule: str, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up) the colluders can move rule's aggregate from the no-attack one, each colluder coordinate in the honest range."""
    lo, hi, mean = values.min(0).values, values.max(0).values, values.mean(0)
    if rule in ("fedmedian", "fedtrimmedavg"):
        stat = Statistic.MEDIAN if rule == "fedmedian" else Statistic.TRIMMED

        def agg(c: torch.Tensor) -> torch.Tensor:
            return order_aggregate(torch.cat([values, c.unsqueeze(0).expand(k, *c.shape)]), stat, 0.2)

        base = agg(mean)
        return base - agg(lo), agg(hi) - base
    gain = 1.0 if rule == "krum" else k / (values.shape[0] + k)
    return gain * (mean - lo), gain * (hi - mean)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=Path("scenarios/attacks/qat_rounding.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--data-path")
    a = ap.parse_args()
    overrides = [f"seed={a.seed}"] + ([f"data.path={a.data_path}"] if a.data_path else [])
    w = load(a.scenario, overrides)
    s = w.scenario
    attack_round = s.attack.start_round
    global_state = _warm_global(a.scenario, attack_round - 1, overrides)
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    cohort = list(range(s.federation.num_clients))
    honest = [
        run_client(w.clients, data, pid, attack_round, global_state, cohort, torch.device("cpu")).state
        for pid in cohort
        if pid not in w.malicious
    ]
    k = len(w.malicious)
    model = build_model(s.model.name, data.num_classes, data.input_shape)
    q = WeightQuantizer(a.bits)
    print(
        f"{s.name} seed {a.seed}: round {attack_round}, {len(honest)} honest updates, {k} colluders, int{a.bits} per-tensor symmetric"
    )
    print(f"{'layer':<16} {'weights':>8} {'within sigma':>13} " + " ".join(f"{r:>14}" for r in RULES))
    totals = {"n": 0, "sigma": 0, **{r: 0 for r in RULES}}
    for name in quantized_weight_names(model):
        values = torch.stack([u[name].double() for u in honest]).flatten(1)
        mean = values.mean(0)
        grid = quant_grid(mean, q)
        dist = boundary_distance(mean, q, grid) * grid.step  # FP units to the nearest boundary
        # which side the nearest boundary is on: up if the weight sits above its integer
        p = positions(mean, grid)
        up_side = p >= torch.round(p)
        counts = {"n": mean.numel(), "sigma": int((dist <= values.std(0)).sum())}
        for r in RULES:
            down, up = _reach(r, values, k)
            counts[r] = int(torch.where(up_side, dist <= up, dist <= down).sum())
        for key, v in counts.items():
            totals[key] += v
        print(_row(name, counts))
    print(_row("total", totals))
    return 0


def _row(name: str, c: dict[str, int]) -> str:
    n = max(c["n"], 1)
    return f"{name:<16} {c['n']:>8} {100 * c['sigma'] / n:>12.2f}% " + " ".join(f"{100 * c[r] / n:>13.2f}%" for r in RULES)


if __name__ == "__main__":
    sys.exit(main())
