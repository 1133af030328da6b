"""Seeds derived from the scenario seed: every random choice gets its own stream."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed for the stream named by ``keys`` under ``seed`` (stable across runs and machines)."""
    words = [seed] + [int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) if isinstance(k, str) else int(k) for k in keys]
    hi, lo = (int(v) for v in np.random.SeedSequence(words).generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


def torch_generator(seed: int, *keys: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded for the stream named by ``keys`` under ``seed``."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def numpy_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A numpy ``Generator`` seeded for the stream named by ``keys`` under ``seed``."""
    return np.random.default_rng(derive_seed(seed, *keys))
