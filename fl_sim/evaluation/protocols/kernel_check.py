"""Protocol ``kernel_check``: whether fl_sim's fake int8 matches a real int8 kernel.

PyTorch's dynamic int8 Linear kernel (CPU) against the fake-quantized twin
(fl_sim.quantization.real_int8), on the test set: prediction agreement, accuracy of each, and logit
differences.
"""

from __future__ import annotations

from typing import Any

import torch

from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models.metrics import accuracy
from fl_sim.quantization.real_int8 import activation_bits, dynamic_int8, fake_dynamic_int8


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@PROTOCOLS.register(
    "kernel_check", "PyTorch's real dynamic-int8 Linear kernel vs fl_sim's fake int8 twin: agreement and logit error"
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Compare the real dynamic-int8 kernel with the fake int8 twin (and FP32) on the test set, on the CPU.

    The model is moved to the CPU (the kernel is a CPU one) and left there.
    """
    bs = ctx.scenario.evaluation.batch_size
    model = ctx.model.cpu()
    x, y = ctx.data.test.x, ctx.data.test.y
    real = _logits(dynamic_int8(model), x, bs)
    with fake_dynamic_int8(model):
        fake = _logits(model, x, bs)
    fp = _logits(model, x, bs)
    diff = (real - fake).abs()
    return {
        "kernel": f"torch.ao dynamic int8 Linear ({torch.backends.quantized.engine}, activations {activation_bits()}-bit)",
        "examples": len(y),
        "prediction_agreement": float((real.argmax(1) == fake.argmax(1)).float().mean()),
        "accuracy_real_int8": accuracy(real.argmax(1), y),
        "accuracy_fake_int8": accuracy(fake.argmax(1), y),
        "accuracy_fp32": accuracy(fp.argmax(1), y),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "mean_abs_logit_fp32": float(fp.abs().mean()),
    }
