"""How a cell is launched: afresh with its overrides, or resumed from its checkpoint; the cell's
environment never carries a Ray address (each cell runs its own local Ray instance)."""

import sys

import torch

from fl_sim.runner import staging_dir
from fl_sim.server.checkpoint import Checkpoint, save_checkpoint
from fl_sim.sweeps.execute import cell_command, cell_env
from fl_sim.sweeps.grid import Cell

CELL = Cell(id="c", axes={"seed": 1}, scenario="/s/a.yaml", overrides=["federation.rounds=3", "seed=1"])


def test_fresh_cell_runs_its_scenario_with_its_overrides(tmp_path):
    cmd = cell_command(CELL, tmp_path / "c", num_cpus=2.0)
    assert cmd == [
        sys.executable,
        "-m",
        "fl_sim.cli",
        "run",
        "/s/a.yaml",
        "--set",
        "federation.rounds=3",
        "--set",
        "seed=1",
        "--out",
        str(tmp_path / "c"),
        "--force",
        "--num-cpus",
        "2",
    ]


def test_interrupted_cell_resumes_from_its_checkpoint(tmp_path):
    stage = staging_dir(tmp_path / "c")
    stage.mkdir()
    save_checkpoint(stage, Checkpoint(2, {"w": torch.zeros(2)}, []))
    cmd = cell_command(CELL, tmp_path / "c", num_cpus=0.5)
    assert cmd[4:] == ["--resume", str(tmp_path / "c"), "--num-cpus", "1"]


def test_stage_without_checkpoint_starts_afresh(tmp_path):
    staging_dir(tmp_path / "c").mkdir()
    assert "--resume" not in cell_command(CELL, tmp_path / "c", num_cpus=1)


def test_cell_env_drops_the_ray_address():
    env = cell_env({"RAY_ADDRESS": "10.0.0.1:6379", "PATH": "/bin", "RAY_DEDUP_LOGS": "0"})
    assert env == {"PATH": "/bin", "RAY_DEDUP_LOGS": "0"}
