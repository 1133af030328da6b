"""Overhead of fl-sim (Flower simulation on Ray) over a plain single-process PyTorch loop doing the
same local training (same client code, cohorts, FedAvg and per-round FP32 evaluation), for 20 and
100 clients, measured side by side in one run.

    python benchmarks/overhead.py [--data-path ../shared/data/mnist] [--clients 20 100] [--rounds 5]

For each federation size it prints the plain loop's time, fl-sim's, and two ratios:
`ratio (rounds)`: fl-sim's rounds 1..R (each from the end of the previous round's evaluation to the
end of its own) over the plain loop's same rounds: the per-round cost of Flower + Ray;
`ratio (total)`: fl-sim's whole wall time, including Ray start-up, actor creation and warm-up (the
partition query loads each worker's data), round 0's evaluation, the final evaluation at every
precision and writing its outputs, over the plain loop's rounds.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from fl_sim.config.loader import validate_dict
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import federated_data
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.runner import run_scenario
from fl_sim.server.plain_loop import run_plain
from fl_sim.wiring import wire


def scenario(args: argparse.Namespace, clients: int) -> Scenario:
    data = {"source": "digits", "calibration_size": 128}
    if args.data_path:
        data = {
            "source": "idx",
            "path": args.data_path,
            "calibration_size": 256,
            "max_train_examples": args.train_examples,
            "max_test_examples": 2000,
        }
    return validate_dict(
        {
            "name": "overhead",
            "seed": 0,
            "data": data,
            "federation": {"num_clients": clients, "rounds": args.rounds},
            "training": {"optimizer": "sgd", "lr": 0.05, "epochs": 1, "batch_size": 32},
            "evaluation": {"precisions": ["fp32"]},
        },
        "overhead",
    )


def time_plain(s: Scenario) -> list[float]:
    """Seconds of each round of the single-process loop (data already loaded)."""
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    ends = [time.perf_counter()]

    def on_round(rnd: int, model: torch.nn.Module) -> None:
        evaluate_precisions(model, data, s.evaluation, s.attack, ["fp32"])
        ends.append(time.perf_counter())

    run_plain(wire(s).clients, data, on_round=on_round)
    return [b - a for a, b in zip(ends, ends[1:])]


def time_flsim(s: Scenario) -> tuple[float, list[float]]:
    """(whole-run seconds, seconds of each round) of an fl-sim run."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_scenario(wire(s), Path(tmp) / "run")
        total = time.perf_counter() - t0
    hist = res["history"]
    return total, [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(hist, hist[1:])]


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in xs) + "]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--train-examples", type=int, default=20000, help="with --data-path: training examples used")
    args = ap.parse_args()
    print(
        f"setup: {args.rounds} rounds, every client trains every round (1 epoch, batch 32), data "
        f"{args.data_path or 'digits'}, torch threads {torch.get_num_threads()}; fl-sim: 1 CPU per client actor"
    )
    for n in args.clients:
        s = scenario(args, n)
        data = federated_data(s.data, n, s.seed)
        plain = time_plain(s)
        total, rounds = time_flsim(s)
        print(
            f"{n} clients ({sum(data.client_sizes())} client examples): s per round, plain loop "
            f"{_fmt(plain)}; fl-sim {_fmt(rounds)}; fl-sim whole run {total:.2f} s"
        )
        print(f"{n} clients ratio (rounds): {sum(rounds) / sum(plain):.2f}")
        print(f"{n} clients ratio (total):  {total / sum(plain):.2f}")


if __name__ == "__main__":
    main()
