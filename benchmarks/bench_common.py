"""Helpers the benchmark scripts share: the data section, the thread default, device sync."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch


def data_section(data_path: str | None) -> dict[str, Any]:
    """Embedded digits by default; an IDX folder (e.g. MNIST: 20k train / 2k test) when given."""
    if data_path:
        return {
            "source": "idx",
            "path": data_path,
            "calibration_size": 256,
            "max_train_examples": 20000,
            "max_test_examples": 2000,
        }
    return {"source": "digits", "calibration_size": 128}


def default_threads() -> int:
    """The torch default, capped by the CPUs this process may run on."""
    return max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0))))


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def add_device_args(ap: argparse.ArgumentParser, device: bool = True) -> None:
    """``--device`` (auto: CUDA when there is one; left out when a script measures every device) and ``--threads``."""
    if device:
        ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=default_threads())


def check_device_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device (torch.cuda.is_available() is False)")


def prepare(args: argparse.Namespace) -> tuple[torch.device, float]:
    """Pick the device, set the thread count and seed torch; returns (device, 1-minute load average)."""
    from fl_sim.devices import pick_device

    device = pick_device(getattr(args, "device", "auto"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return device, os.getloadavg()[0]  # other work on the machine skews CPU figures: reported in setup


def setup(args: argparse.Namespace, scenario: Any) -> tuple[torch.device, float, Any, Any]:
    """``prepare`` plus the scenario built from ``args`` and its federated data:
    (device, load average, scenario, data)."""
    from fl_sim.data.federated import federated_data

    device, load = prepare(args)
    s = scenario(args)
    return device, load, s, federated_data(s.data, s.federation.num_clients, s.seed)
