"""Many PTQ calibration trials in one forward pass.

Calibration changes only the activation ranges (weights quantize the same way in every trial), so
K trials are batched by repeating each input K times and quantizing trial k's copy with trial k's
ranges (broadcast over a leading trial axis): one large forward instead of K small ones, which is
what a GPU wants. Equal to K separate ``fake_quantized`` passes (tests/evaluation).
"""

from __future__ import annotations

import torch
from torch import nn

from fl_sim.config.precision import QuantSpec
from fl_sim.quantization.fake_quant_model import Ranges, transformed_layers
from fl_sim.quantization.primitives import fake_quantize


def _stack(ranges: list[Ranges]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {name: (torch.stack([r[name][0] for r in ranges]), torch.stack([r[name][1] for r in ranges])) for name in ranges[0]}


@torch.no_grad()
def batched_predictions(
    model: nn.Module, spec: QuantSpec, ranges: list[Ranges], x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """(K, N) arg-max predictions of ``model`` at ``spec`` under each of the K calibrated ``ranges``.

    Parameters
    ----------
    model
        The FP model; its Conv/Linear layers are fake-quantized only inside this call.
    spec
        The int<b> quantizer (bits, symmetry, granularity) shared by every trial.
    ranges
        One calibrated set of activation ranges per trial, all with the same layer names.
    x
        The N inputs (any device; moved to ``device`` chunk by chunk).
    batch_size
        Forward batch size over all trials together: each chunk holds ``batch_size // K`` inputs (at least 1).
    device
        Where the forward runs.

    Returns
    -------
    torch.Tensor
        (K, N) int64 predictions on the CPU, row k under ``ranges[k]``.
    """
    k = len(ranges)
    stacked = {n: (lo.to(device), hi.to(device)) for n, (lo, hi) in _stack(ranges).items()}

    def weight_fn(_name: str, w: torch.Tensor) -> torch.Tensor:
        return fake_quantize(w, spec.bits, spec.weight_symmetric, per_channel=spec.per_channel)

    def input_fn(name: str, inp: torch.Tensor) -> torch.Tensor:
        lo, hi = stacked[name]
        shape = (k,) + (1,) * inp.dim()
        per_trial = inp.view(k, -1, *inp.shape[1:])
        return fake_quantize(per_trial, spec.bits, spec.act_symmetric, lo=lo.view(shape), hi=hi.view(shape)).view_as(inp)

    chunk = max(1, batch_size // k)
    model.eval()
    out = []
    with transformed_layers(model, weight_fn, input_fn):
        for i in range(0, len(x), chunk):
            xc = x[i : i + chunk].to(device)
            out.append(model(xc.repeat(k, *([1] * (xc.dim() - 1)))).argmax(1).view(k, -1).cpu())
    return torch.cat(out, dim=1)
