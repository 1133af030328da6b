"""fl_sim: federated learning under quantization, on Flower + PyTorch.

Stages (one sub-package each): config -> data -> models -> clients -> server ->
quantization -> evaluation -> reporting.
"""

__version__ = "0.1.0"
