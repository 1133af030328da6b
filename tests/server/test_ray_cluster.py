"""A scenario on an existing two-node Ray cluster (a head and a worker started with `ray start` on
this machine). The head offers no CPU, so every client must run on the worker node: the run can only
finish if fl-sim really schedules its clients on the cluster it was pointed at."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fl_sim.cli import main
from tests.conftest import tiny_raw

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str) -> int:
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        return sum(1 for n in ray.nodes() if n.get("Alive"))
    finally:
        ray.shutdown()


@pytest.fixture
def two_node_cluster(tmp_path):
    """`ray start --block` for a head (0 CPUs) and a worker (2 CPUs); both stopped afterwards."""
    if not RAY.is_file():
        pytest.fail(f"the ray CLI is missing next to {sys.executable}")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--disable-usage-stats"]
    procs = [
        subprocess.Popen(
            [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false", *common],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 120
        while True:  # the head's GCS accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    pytest.fail("the Ray head did not start")
                time.sleep(0.5)
        procs.append(
            subprocess.Popen(
                [str(RAY), "start", f"--address={address}", "--num-cpus=2", *common],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        while _alive_nodes(address) < 2:
            if time.monotonic() > deadline or procs[1].poll() is not None:
                pytest.fail("the Ray worker node did not join the head")
            time.sleep(1)
        yield address
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def test_scenario_runs_on_an_existing_two_node_cluster(tmp_path, two_node_cluster, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    raw = tiny_raw(federation={"num_clients": 4, "rounds": 2, "client_resources": {"num_cpus": 1}})
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["run", str(scen), "--out", str(out), "--ray-address", two_node_cluster]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["cluster"] == {"address": two_node_cluster, "nodes": 2, "cpus": 2.0, "gpus": 0.0}
    assert [h["replied"] for h in res["history"][1:]] == [[0, 1, 2, 3]] * 2
    assert res["final"]["fp32"]["accuracy"] > 0.3  # it learned (10 classes: chance is 0.1)


def test_a_local_run_ignores_a_cluster_started_on_this_machine(tmp_path, two_node_cluster, monkeypatch):
    """Without --ray-address (and $RAY_ADDRESS) a run gets its own local Ray instance, not the
    cluster `ray start` left on this machine (which plain `ray.init()` would join)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    scen = tmp_path / "tiny.yaml"
    scen.write_text(yaml.safe_dump(tiny_raw(federation={"num_clients": 3, "rounds": 1})))
    out = tmp_path / "run"
    assert main(["run", str(scen), "--out", str(out)]) == 0
    cluster = json.loads((out / "results.json").read_text())["cluster"]
    assert cluster["address"] == "local" and cluster["nodes"] == 1
