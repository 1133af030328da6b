"""Flower's own launcher, as a new user runs it: ``flwr run .`` starts a local SuperLink with Flower's
default federation (2 simulated SuperNodes since flwr 1.32) and runs a scenario of 4 clients to the end:
each node runs its share of a round's clients in turn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import yaml

from tests.conftest import tiny_raw

ROOT = Path(__file__).resolve().parents[1]


def _stop_local_superlink(flwr_home: Path) -> None:
    """Stop what the launcher left running for this test's Flower home (its local SuperLink is detached)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(flwr_home) in cmdline and "flower-superlink" in cmdline:
            os.kill(int(pid), signal.SIGTERM)


def test_flwr_run_dot_runs_a_scenario_on_flowers_default_federation(tmp_path):
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny_raw(federation={"num_clients": 4, "rounds": 2})))
    out = tmp_path / "run"
    home = tmp_path / "flwr-home"
    env = {
        **os.environ,
        "FLWR_HOME": str(home),  # a fresh Flower configuration, as on a new machine
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "RAY_ADDRESS": "local",  # never join another Ray instance of this machine
    }
    cmd = ["flwr", "run", ".", "--stream", "--run-config", f'scenario="{scen}" out="{out}"']
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        _stop_local_superlink(home)
    log = proc.stdout + proc.stderr
    assert "(2 simulated SuperNodes)" in log, log[-3000:]
    assert "fl-sim: 2 Flower nodes for 4 clients per round" in log, log[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [h["round"] for h in results["history"]] == [0, 1, 2]
    assert all(sorted(h["replied"]) == [0, 1, 2, 3] for h in results["history"][1:])  # every client, on 2 nodes
