"""Cost of one malicious-QAT training step over one honest training step, per simulated bit width.

    python benchmarks/qat_step.py [--data-path /path/to/mnist-idx] [--steps 30] [--batch-size 32] [--device auto|cpu|cuda]

One step = zero_grad, the loss function, backward, optimizer step: the body of
fl_sim.clients.local_training.train_steps, with the scenario's optimizer (SGD, momentum 0.9) on
the scenario's CNN (fl_sim.models). The loss functions are the codebase's own, by registered name:
honest (cross-entropy), honest_qat (training.qat.bits), qat_indiscriminate with a single bit width b
for each --bits, and the defaults of qat_indiscriminate (bits 8,7,6,5) and qat_backdoor (bits 8,4;
it also forwards the triggered copy of the batch). A calibration step (--activations calibrated)
runs inside the attack's loss, as it does in training. Every step starts from the same weights and
gets its own seeded batch (already on the device); the variants take turns step by step, in a
seeded random order, so that background load hits them alike. Prints the median ms/step per
variant, `ratio: X` (over the honest step) and the extra milliseconds per simulated bit width
(qat_backdoor's widths each forward twice the batch). On a CPU shared with other work, --threads 1
avoids OpenMP threads waiting on each other (the setup line prints the load average).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import torch
from bench_common import add_device_args, check_device_args, data_section, setup, sync
from torch import nn

import fl_sim.wiring  # noqa: F401  (loads the registered components)
from fl_sim.clients.local_training import LossFn, make_optimizer
from fl_sim.clients.objective_attack import ObjectiveAttack
from fl_sim.clients.registry import BEHAVIOURS, TrainContext
from fl_sim.config.loader import validate_dict
from fl_sim.config.precision import MAX_BITS, MIN_BITS
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.seeding import torch_generator
from fl_sim.server.loop import initial_model

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Variant:
    """One row of the table: a loss function, the bit widths it simulates, its own model and optimizer."""

    name: str
    widths: int
    loss_fn: LossFn
    model: nn.Module
    optimizer: torch.optim.Optimizer
    start: dict[str, torch.Tensor]
    times: list[float] = field(default_factory=list)


def scenario(args: argparse.Namespace) -> Scenario:
    data = data_section(args.data_path)
    return validate_dict(
        {
            "name": "bench-qat-step",
            "seed": 0,
            "data": data,
            "federation": {"num_clients": 10},
            "training": {"batch_size": args.batch_size, "qat": {"enabled": True, "bits": args.qat_bits}},
        },
        "bench",
    )


def behaviour_loss(name: str, params: dict, s: Scenario, fd: FederatedData, device: torch.device) -> LossFn:
    """The loss function behaviour ``name`` trains with (malicious ones: their attack objective)."""
    cls = BEHAVIOURS.get(name)
    behaviour = cls(cls.Params(**params))
    if isinstance(behaviour, ObjectiveAttack):
        ctx = TrainContext(
            scenario=s,
            server_round=1,
            partition_id=0,
            data=fd.clients[0],
            cohort_size=1,
            device=device,
            generator=torch_generator(s.seed, "bench"),
            num_classes=fd.num_classes,
        )
        return behaviour.objective(s, ctx)
    return behaviour.loss_fn(s)


def plan(args: argparse.Namespace) -> list[tuple[str, str, dict, int]]:
    """(row label, behaviour, params, simulated bit widths) for every row of the table."""
    act = {"activations": args.activations}
    rows = [("honest (FP32 cross-entropy)", "honest", {}, 0), (f"honest_qat int{args.qat_bits}", "honest_qat", {}, 1)]
    rows += [(f"qat_indiscriminate bits=[{b}]", "qat_indiscriminate", {"bits": [b], **act}, 1) for b in args.bits]
    for name in ("qat_indiscriminate", "qat_backdoor"):
        bits = BEHAVIOURS.get(name).Params().bits
        rows.append((f"{name} default bits={bits}", name, act, len(bits)))
    return rows


def batches(fd: FederatedData, n: int, size: int, device: torch.device) -> list[Batch]:
    """``n`` seeded minibatches of the pooled client data, placed on ``device`` up front."""
    x = torch.cat([c.x for c in fd.clients])
    y = torch.cat([c.y for c in fd.clients])
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        idx = torch.randint(len(y), (size,), generator=gen)
        out.append((x[idx].to(device), y[idx].to(device)))
    return out


def timed_step(v: Variant, batch: Batch, device: torch.device) -> float:
    """Seconds of one training step of ``v`` on ``batch``, from its fixed start weights."""
    v.model.load_state_dict(v.start)
    x, y = batch
    sync(device)
    t = time.perf_counter()
    v.optimizer.zero_grad(set_to_none=True)
    loss = v.loss_fn(v.model, x, y)
    loss.backward()
    v.optimizer.step()
    sync(device)
    return time.perf_counter() - t


def build_variants(args: argparse.Namespace, s: Scenario, fd: FederatedData, device: torch.device) -> list[Variant]:
    out = []
    for label, name, params, widths in plan(args):
        model = initial_model(s, fd).to(device).train()
        out.append(
            Variant(
                label,
                widths,
                behaviour_loss(name, params, s, fd, device),
                model,
                make_optimizer(model.parameters(), s.training),
                {k: v.detach().clone() for k, v in model.state_dict().items()},
            )
        )
    return out


def run(variants: list[Variant], data: list[Batch], warmup: int, device: torch.device) -> None:
    """Round-robin: step i of every variant on batch i, in a seeded random order (no variant always
    runs first); the first ``warmup`` steps are not kept."""
    gen = torch.Generator().manual_seed(1)
    for i, batch in enumerate(data):
        for j in torch.randperm(len(variants), generator=gen).tolist():
            v = variants[j]
            dt = timed_step(v, batch, device)
            if i >= warmup:
                v.times.append(dt)


def report(variants: list[Variant]) -> None:
    honest = statistics.median(variants[0].times)
    print(f"{'variant':<46} {'ms/step':>9}  {'ratio':>11}  {'+ms per width':>13}")
    for v in variants:
        ms = statistics.median(v.times) * 1000
        extra = f"{(ms - honest * 1000) / v.widths:13.2f}" if v.widths else f"{'-':>13}"
        print(f"{v.name:<46} {ms:9.2f}  ratio: {ms / (honest * 1000):5.2f}  {extra}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", help="IDX folder (e.g. MNIST); default: embedded digits")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 2], help="single simulated bit widths")
    ap.add_argument("--qat-bits", type=int, default=8, help="training.qat.bits of the honest QAT row")
    ap.add_argument(
        "--activations",
        default="dynamic",
        choices=["dynamic", "calibrated"],
        help="the attack's activation ranges (calibrated: a calibration pass inside each step)",
    )
    add_device_args(ap)
    args = ap.parse_args()
    if min(args.steps, args.batch_size, args.threads) < 1 or args.warmup < 0:
        ap.error("--steps, --batch-size and --threads must be >= 1 and --warmup >= 0")
    bad = [b for b in [*args.bits, args.qat_bits] if not MIN_BITS <= b <= MAX_BITS]
    if bad:
        ap.error(f"bit widths must be in {MIN_BITS}..{MAX_BITS}, got {bad}")
    check_device_args(ap, args)
    return args


def main() -> None:
    args = parse_args()
    device, load, s, fd = setup(args, scenario)
    variants = build_variants(args, s, fd, device)
    run(variants, batches(fd, args.warmup + args.steps, args.batch_size, device), args.warmup, device)
    print(
        f"setup: device {device}, torch threads {torch.get_num_threads()} (load average {load:.1f}), "
        f"model {s.model.name} on {fd.name}, batch {args.batch_size}, optimizer {s.training.optimizer.value}, "
        f"attack activations {args.activations}, median of {args.steps} steps after {args.warmup} warm-up"
    )
    report(variants)


if __name__ == "__main__":
    main()
