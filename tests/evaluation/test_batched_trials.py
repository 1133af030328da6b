"""K calibration trials in one forward equal K separate fake-quantized passes."""

import torch
from torch import nn

from fl_sim.config.precision import QuantSpec
from fl_sim.evaluation.batched_trials import batched_predictions
from fl_sim.models.metrics import predict
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized


def test_batched_trials_equal_sequential_trials():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x = torch.rand(37, 1, 6, 6)
    spec = QuantSpec(bits=3)
    g = torch.Generator().manual_seed(1)
    ranges = [calibrate_ranges(model, [torch.rand(8, 1, 6, 6, generator=g) * s]) for s in (0.3, 1.0, 2.5, 0.05)]
    got = batched_predictions(model, spec, ranges, x, batch_size=20, device=torch.device("cpu"))
    want = []
    for r in ranges:
        with fake_quantized(model, spec, r):
            want.append(predict(model, x, 20, torch.device("cpu")))
    assert got.shape == (4, 37)
    assert torch.equal(got, torch.stack(want))
    assert not all(torch.equal(got[0], row) for row in got[1:])  # the trials really differ
