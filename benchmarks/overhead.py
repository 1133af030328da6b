"""Overhead of fl-sim (Flower simulation on Ray) over a plain single-process PyTorch loop doing
the same local training: 20 clients x 5 rounds, all honest, FedAvg, measured side by side.

    python benchmarks/overhead.py [--data-path /path/to/mnist-idx] [--clients 20] [--rounds 5]

Prints both wall times and `ratio: X` (fl-sim / plain). Both include the central FP32
evaluation per round; the fl-sim time includes Ray start-up and actor creation.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from fl_sim import components  # noqa: F401
from fl_sim.config.loader import validate_dict
from fl_sim.data.federated import federated_data
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.runner import run_scenario
from fl_sim.server.plain_loop import run_plain


def scenario(args: argparse.Namespace):
    data = {"source": "digits", "calibration_size": 128}
    if args.data_path:
        data = {"source": "idx", "path": args.data_path, "calibration_size": 256, "max_train_examples": 20000, "max_test_examples": 2000}
    return validate_dict({
        "name": "overhead", "seed": 0, "data": data,
        "federation": {"num_clients": args.clients, "rounds": args.rounds},
        "training": {"optimizer": "adam", "lr": 0.001, "epochs": 1, "batch_size": 32},
        "evaluation": {"precisions": ["fp32"]},
    }, "overhead")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    s = scenario(args)
    data = federated_data(s.data, s.federation.num_clients, s.seed)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t = time.perf_counter()
    run_plain(s, data, on_round=lambda r, m: evaluate_precisions(m, data, s.evaluation, s.attack, ["fp32"]))
    plain = time.perf_counter() - t

    logging.getLogger("flwr").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_scenario(s, Path(tmp) / "run")
        flsim = time.perf_counter() - t

    print(f"setup: {s.federation.num_clients} clients x {s.federation.rounds} rounds, data {data.name}, "
          f"{sum(len(c) for c in data.clients)} client examples, torch threads {torch.get_num_threads()}")
    print(f"plain single-process loop: {plain:.2f} s")
    print(f"fl-sim (Flower + Ray):     {flsim:.2f} s")
    print(f"ratio: {flsim / plain:.2f}")


if __name__ == "__main__":
    main()
