"""Kill a run with SIGKILL after some round, resume it, and get exactly the final metrics of an
uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from fl_sim.cli import main
from tests.conftest import tiny_raw


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    raw = tiny_raw(federation={"num_clients": 4, "rounds": 4})
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(raw))
    killed = tmp_path / "killed"
    stage = tmp_path / ".killed.incomplete"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fl_sim.cli", "run", str(scen), "--out", str(killed)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            state = stage / "checkpoint_state.json"
            if state.is_file() and json.loads(state.read_text())["round"] >= 2:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not killed.exists() and (stage / "INCOMPLETE").is_file()

    assert main(["run", "--resume", str(killed)]) == 0
    assert main(["run", str(scen), "--out", str(tmp_path / "whole")]) == 0
    resumed = json.loads((killed / "results.json").read_text())
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert resumed["final"] == whole["final"]
    assert [h["round"] for h in resumed["history"]] == [0, 1, 2, 3, 4]
    assert [h["fp32_accuracy"] for h in resumed["history"]] == [h["fp32_accuracy"] for h in whole["history"]]
    assert not stage.exists()


def test_resume_of_nothing_is_a_user_error(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "none")]) == 2
    assert "no interrupted run" in capsys.readouterr().err


def test_resume_of_an_unreadable_checkpoint_is_a_user_error(tmp_path, capsys):
    run_dir = tmp_path / "r"
    stage = tmp_path / ".r.incomplete"
    stage.mkdir()
    (stage / "scenario.json").write_text(json.dumps(tiny_raw()))
    (stage / "checkpoint_model.safetensors").write_bytes(b"not a safetensors file")
    (stage / "checkpoint_state.json").write_text(json.dumps({"round": 1, "history": [{"round": 0}]}))
    assert main(["run", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable fl-sim checkpoint" in err[0]
