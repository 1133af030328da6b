"""Where tensors are computed: the device a ``device`` setting names."""

from __future__ import annotations

import torch


def pick_device(choice: str) -> torch.device:
    """'auto' takes the GPU when there is one; 'cuda' insists on one; 'cpu' is the CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("evaluation.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")
