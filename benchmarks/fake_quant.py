"""Cost of a fake-quantized forward pass over the FP32 forward pass, per precision, measured side by side.

    python benchmarks/fake_quant.py [--data-path /path/to/mnist-idx] [--reps 10] [--batch-size 256] [--device auto|cpu|cuda]

Each int<b> of --precisions is applied the way evaluation applies it (fl_sim.evaluation.precisions.
precision_context: weights per-tensor and per-channel, with and without activation quantization,
activation ranges by min-max calibration on the server's calibration set). Calibration runs once
per variant, before timing; each variant has its own copy of the scenario's CNN (initial weights).
On CPU it also times PyTorch's real dynamic int8 kernel (fl_sim.quantization.real_int8: int8
Linear layers, convolutions stay FP32) and its fake-quantized twin, against the FP32 forward on CPU.
The variants take turns rep by rep, in a seeded random order, over one fixed seeded batch; prints
the median ms/forward and `ratio: X` = variant / FP32 forward on the same device. On a CPU shared
with other work, --threads 1 avoids OpenMP threads waiting on each other (see the load average in
the setup line).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from bench_common import add_device_args, check_device_args, data_section, setup, sync
from torch import nn

import fl_sim.wiring  # noqa: F401  (loads the registered components)
from fl_sim.config.loader import validate_dict
from fl_sim.config.precision import Granularity, PrecisionKind, parse_precision
from fl_sim.config.schema import EvaluationConfig, QuantScope, Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.evaluation.precisions import precision_context
from fl_sim.quantization.real_int8 import dynamic_int8, fake_dynamic_int8
from fl_sim.server.loop import initial_model

CPU = torch.device("cpu")


@dataclass
class Variant:
    """One row: a model that computes at some precision (its context already entered) on a device."""

    name: str
    model: nn.Module
    device: torch.device
    times: list[float] = field(default_factory=list)


def scenario(args: argparse.Namespace) -> Scenario:
    data = data_section(args.data_path)
    return validate_dict({"name": "bench-fake-quant", "seed": 0, "data": data, "federation": {"num_clients": 10}}, "bench")


def fixed_batch(fd: FederatedData, size: int) -> torch.Tensor:
    """``size`` test images drawn (with replacement) by a seeded generator."""
    idx = torch.randint(len(fd.test), (size,), generator=torch.Generator().manual_seed(0))
    return fd.test.x[idx]


def fake_quant_variants(
    base: nn.Module, precisions: list[str], fd: FederatedData, device: torch.device, stack: contextlib.ExitStack
) -> list[Variant]:
    """int<b> x {per-tensor, per-channel} x {weights only, weights and activations}, each on its own
    copy of ``base`` with its evaluation context entered on ``stack`` (calibration happens here)."""
    out = []
    for name in precisions:
        for granularity in Granularity:
            for scope in (QuantScope.WEIGHTS, QuantScope.WEIGHTS_ACTIVATIONS):
                cfg = EvaluationConfig(precisions=[name], granularity=granularity, scope=scope)
                model = copy.deepcopy(base).to(device).eval()
                stack.enter_context(precision_context(model, name, cfg, fd.calibration, device))
                acts = "W+A" if scope is QuantScope.WEIGHTS_ACTIVATIONS else "W"
                out.append(Variant(f"{name} {granularity.value} {acts}", model, device))
    return out


def kernel_variants(base: nn.Module, stack: contextlib.ExitStack) -> list[Variant]:
    """PyTorch's real dynamic int8 Linear kernel and the fake twin that should compute the same (CPU)."""
    twin = copy.deepcopy(base).cpu().eval()
    stack.enter_context(fake_dynamic_int8(twin))
    return [
        Variant("real int8 kernel (dynamic, Linear only)", dynamic_int8(base), CPU),
        Variant("fake twin of the int8 kernel", twin, CPU),
    ]


@torch.no_grad()
def timed_forward(v: Variant, inputs: Callable[[torch.device], torch.Tensor]) -> float:
    x = inputs(v.device)
    sync(v.device)
    t = time.perf_counter()
    v.model(x)
    sync(v.device)
    return time.perf_counter() - t


def run(variants: list[Variant], inputs: Callable[[torch.device], torch.Tensor], reps: int, warmup: int) -> None:
    """Round-robin: rep i of every variant, in a seeded random order (no variant always runs
    first); the first ``warmup`` reps are not kept."""
    gen = torch.Generator().manual_seed(1)
    for i in range(warmup + reps):
        for j in torch.randperm(len(variants), generator=gen).tolist():
            v = variants[j]
            dt = timed_forward(v, inputs)
            if i >= warmup:
                v.times.append(dt)


def report(variants: list[Variant]) -> None:
    fp = {v.device: statistics.median(v.times) for v in variants if v.name == "fp32"}
    print(f"{'variant':<42} {'device':>6} {'ms/forward':>11}  ratio over FP32 (same device)")
    for v in variants:
        ms = statistics.median(v.times) * 1000
        print(f"{v.name:<42} {v.device.type:>6} {ms:11.2f}  ratio: {ms / (fp[v.device] * 1000):5.2f}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--reps", type=int, default=10, help="timed forwards per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--precisions", nargs="+", default=["int8", "int6", "int4", "int2"])
    add_device_args(ap)
    args = ap.parse_args()
    if min(args.reps, args.batch_size, args.threads) < 1 or args.warmup < 0:
        ap.error("--reps, --batch-size and --threads must be >= 1 and --warmup >= 0")
    try:
        bad = [p for p in args.precisions if parse_precision(p).kind is not PrecisionKind.INT]
    except ValueError as exc:
        ap.error(f"--precisions: {exc}")
    if bad:
        ap.error(f"--precisions takes int<b> names only, got {bad}")
    check_device_args(ap, args)
    return args


def main() -> None:
    args = parse_args()
    device, load, s, fd = setup(args, scenario)
    base = initial_model(s, fd).eval()
    x = fixed_batch(fd, args.batch_size)
    on_device = {CPU: x, device: x.to(device)}
    with contextlib.ExitStack() as stack:
        variants = [Variant("fp32", copy.deepcopy(base).to(device), device)]
        variants += fake_quant_variants(base, args.precisions, fd, device, stack)
        if device != CPU:
            variants.append(Variant("fp32", copy.deepcopy(base), CPU))
        variants += kernel_variants(base, stack)
        run(variants, on_device.__getitem__, args.reps, args.warmup)
    print(
        f"setup: device {device}, torch threads {torch.get_num_threads()} (load average {load:.1f}), "
        f"model {s.model.name} on {fd.name}, batch {args.batch_size}, median of {args.reps} forwards after "
        f"{args.warmup} warm-up, quantized engine {torch.backends.quantized.engine}"
    )
    report(variants)


if __name__ == "__main__":
    main()
