"""GPU against CPU for one client's local training and for the per-precision evaluation, side by side.

    python benchmarks/gpu.py [--data-path /path/to/mnist-idx] [--epochs 5] [--clients 10] [--repeats 3]
                             [--precisions fp32 int8 int4]

Training: --epochs local epochs of client 0, honest, through fl_sim.clients.runtime.run_client (the
function every client runs: model built and loaded, train_steps with the scenario's optimizer,
state copied back to the CPU). Evaluation: fl_sim.evaluation.precisions.evaluate_precisions of the
trained model over the test set (clean and triggered) at every --precisions, activation ranges
calibrated on the server's calibration set. Each is timed --repeats times per device after one
untimed warm-up (CUDA context, cuDNN autotuning); prints the median seconds and `ratio: X`
= CUDA / CPU (below 1: the GPU is faster). Without CUDA it prints the CPU figures and says that
there are no GPU figures (exit status 0). On a CPU shared with other work, --threads 1 avoids
OpenMP threads waiting on each other (see the load average in the setup line).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bench_common import add_device_args, check_device_args, data_section, prepare, sync

from fl_sim.clients.runtime import run_client
from fl_sim.config.loader import validate_dict
from fl_sim.config.precision import parse_precision
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData, federated_data
from fl_sim.evaluation.precisions import evaluate_precisions
from fl_sim.server.loop import initial_model
from fl_sim.wiring import wire

State = dict[str, torch.Tensor]
NO_GPU = "GPU: not available on this machine (torch.cuda.is_available() is False); no GPU figures"


def scenario(args: argparse.Namespace, device: str) -> Scenario:
    data = data_section(args.data_path)
    return validate_dict(
        {
            "name": "bench-gpu",
            "seed": 0,
            "data": data,
            "federation": {"num_clients": args.clients},
            "training": {"epochs": args.epochs, "batch_size": args.batch_size},
            "evaluation": {"precisions": args.precisions, "device": device},
        },
        "bench",
    )


def median_seconds(work: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median wall time of ``work`` over ``repeats`` calls, after one untimed warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        work()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_client(s: Scenario, fd: FederatedData, start: State, device: torch.device) -> State:
    """Client 0's honest local training in round 1 from ``start``; its new state (on the CPU)."""
    return run_client(wire(s).clients, fd, 0, 1, start, [0], device).state


def evaluation_work(s: Scenario, fd: FederatedData, state: State) -> Callable[[], object]:
    """One call of the per-precision evaluation of ``state`` (on the device named by the scenario)."""
    model = initial_model(s, fd)
    model.load_state_dict(state)
    return lambda: evaluate_precisions(model, fd, s.evaluation, s.attack)


def measure(
    args: argparse.Namespace,
    fd: FederatedData,
    start: State,
    trained: State,
    device: torch.device,
) -> tuple[float, float]:
    """(seconds of training from ``start``, seconds of evaluating ``trained``) on ``device``."""
    s = scenario(args, device.type)
    train = median_seconds(lambda: train_client(s, fd, start, device), device, args.repeats)
    evaluate = median_seconds(evaluation_work(s, fd, trained), device, args.repeats)
    return train, evaluate


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--epochs", type=int, default=5, help="K local epochs of the timed client")
    ap.add_argument("--clients", type=int, default=10, help="clients the training set is split among")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions per device (median reported)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "int8", "int4"])
    add_device_args(ap, device=False)  # both devices are measured
    args = ap.parse_args()
    check_device_args(ap, args)
    if min(args.epochs, args.batch_size, args.repeats, args.threads) < 1 or args.clients < 2:
        ap.error("--epochs, --batch-size, --repeats and --threads must be >= 1, --clients >= 2")
    try:
        for p in args.precisions:
            parse_precision(p)
    except ValueError as exc:
        ap.error(f"--precisions: {exc}")
    return args


def main() -> None:
    args = parse_args()
    _, load = prepare(args)
    s = scenario(args, "cpu")
    fd = federated_data(s.data, s.federation.num_clients, s.seed)
    client = fd.clients[0]
    gpu = f" + cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""
    print(
        f"setup: devices cpu{gpu}, torch threads {torch.get_num_threads()} (load average {load:.1f}), "
        f"model {s.model.name} on {fd.name}, client 0: {len(client)} examples x {args.epochs} epochs, "
        f"batch {args.batch_size}; evaluation: {len(fd.test)} test images (+ triggered copies) at "
        f"{', '.join(args.precisions)}, batch {s.evaluation.batch_size}; median of {args.repeats}"
    )
    start = {k: v.clone() for k, v in initial_model(s, fd).state_dict().items()}
    trained = train_client(s, fd, start, torch.device("cpu"))  # the model both devices evaluate
    cpu_train, cpu_eval = measure(args, fd, start, trained, torch.device("cpu"))
    if not torch.cuda.is_available():
        print(f"training:   cpu {cpu_train:.3f} s")
        print(f"evaluation: cpu {cpu_eval:.3f} s")
        print(NO_GPU)
        return
    gpu_train, gpu_eval = measure(args, fd, start, trained, torch.device("cuda"))
    print(f"training:   cpu {cpu_train:.3f} s   cuda {gpu_train:.3f} s   ratio: {gpu_train / cpu_train:.2f}")
    print(f"evaluation: cpu {cpu_eval:.3f} s   cuda {gpu_eval:.3f} s   ratio: {gpu_eval / cpu_eval:.2f}")


if __name__ == "__main__":
    main()
