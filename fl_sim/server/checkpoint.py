"""Per-round checkpoints of a run, each file written atomically.

The global model (safetensors, no pickle) and the run state
(JSON: last finished round and the history so far), each written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fl_sim.files import write_json_atomic
from fl_sim.server.round_record import RoundRecord

MODEL_FILE, STATE_FILE = "checkpoint_model.safetensors", "checkpoint_state.json"


@dataclass(frozen=True)
class Checkpoint:
    """The state after a finished round: its number, the global model, the history so far."""

    round: int
    state: dict[str, torch.Tensor]
    history: list[RoundRecord]


def save_checkpoint(folder: Path, ckpt: Checkpoint) -> None:
    """Save a checkpoint: the model first, then the state file.

    Model first, then the state file that names its round: a crash between the two leaves the
    previous state file, whose round the resumed run simply repeats (rounds are deterministic).
    """
    tmp = folder / f".{MODEL_FILE}.tmp"
    save_file({k: v.detach().contiguous().cpu() for k, v in ckpt.state.items()}, str(tmp))
    tmp.replace(folder / MODEL_FILE)
    write_json_atomic(folder / STATE_FILE, {"round": ckpt.round, "history": [r.to_json() for r in ckpt.history]})


def load_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint in ``folder``, or None if there is none; ValueError naming the file if it is unreadable."""
    if not (folder / STATE_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        return None
    try:
        meta = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        history = [RoundRecord.from_json(h) for h in meta["history"]]
        return Checkpoint(int(meta["round"]), load_file(str(folder / MODEL_FILE)), history)
    except (ValueError, KeyError, TypeError, OSError) as exc:  # json, a missing or extra field, safetensors
        raise ValueError(f"{folder / STATE_FILE}: not a readable fl-sim checkpoint ({type(exc).__name__}: {exc})") from None
