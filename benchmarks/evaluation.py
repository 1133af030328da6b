"""Cost of the worst-case PTQ protocol relative to plain FP inference, measured side by side.

    python benchmarks/evaluation.py [--data-path /path/to/mnist-idx] [--draws 50] [--device auto|cpu|cuda]

Prints the wall time of one FP32 pass over the test set, of the worst-case protocol (K draws x the
int precisions, each draw: calibrate, then classify the test set and the per-client sets), and
`ratio: X` = protocol time / (K x precisions x one FP32 test pass). With --device auto the GPU is
used when there is one; run with --device cpu as well to compare.
"""

from __future__ import annotations

import argparse
import time

import torch

import fl_sim.wiring  # noqa: F401  (loads the registered components)
from fl_sim.config.loader import validate_dict
from fl_sim.data.federated import federated_data
from fl_sim.devices import pick_device
from fl_sim.evaluation.protocols import EvalContext
from fl_sim.evaluation.protocols.worst_case import run as worst_case
from fl_sim.models.metrics import predict
from fl_sim.server.loop import initial_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args()
    data = {"source": "digits", "calibration_size": 128}
    if args.data_path:
        data = {
            "source": "idx",
            "path": args.data_path,
            "calibration_size": 256,
            "max_train_examples": 20000,
            "max_test_examples": 2000,
        }
    s = validate_dict(
        {
            "name": "bench-eval",
            "seed": 0,
            "data": data,
            "federation": {"num_clients": 20},
            "evaluation": {"precisions": ["fp32", "int8", "int4"], "device": args.device, "worst_case": {"draws": args.draws}},
        },
        "bench",
    )
    fd = federated_data(s.data, s.federation.num_clients, s.seed)
    device = pick_device(args.device)
    model = initial_model(s, fd).to(device)
    predict(model, fd.test.x, s.evaluation.batch_size, device)  # warm-up
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        predict(model, fd.test.x, s.evaluation.batch_size, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    fp_pass = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    out = worst_case(EvalContext(model, fd, s, device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    wc = time.perf_counter() - t
    n_prec = len(out["summary"])
    print(
        f"setup: data {fd.name}, test set {len(fd.test)}, {s.federation.num_clients} clients x "
        f"{s.evaluation.worst_case.client_examples} examples, K={args.draws}, {n_prec} quantized precisions, device {device}"
    )
    print(f"one FP32 test pass: {fp_pass * 1000:.1f} ms")
    print(f"worst-case protocol: {wc:.2f} s ({wc / (args.draws * n_prec) * 1000:.1f} ms per draw and precision)")
    print(f"ratio: {wc / (args.draws * n_prec * fp_pass):.2f}")


if __name__ == "__main__":
    main()
