"""fl_sim: federated learning under quantization, on Flower + PyTorch.

Stages (one sub-package each): config -> data -> models -> clients -> server ->
quantization -> evaluation -> reporting. The Python API (``fl_sim.run``, ``fl_sim.load_run``,
``fl_sim.sweep``, :class:`fl_sim.api.Run`) lives in ``fl_sim.api`` and is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Run", "load_run", "resume", "run", "sweep"]


def __getattr__(name: str) -> Any:
    """``fl_sim.run`` and friends, imported on first use (``import fl_sim`` stays light)."""
    if name in __all__:
        # Loaded by name, at first use only: the stages below import this package for __version__
        # and must not pull in the API layer above them (import-linter's layer contract).
        return getattr(importlib.import_module("fl_sim.api"), name)
    raise AttributeError(f"module 'fl_sim' has no attribute {name!r}")
