"""Observers, precision names, float casts and TaCQ saliency against reference computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.config.precision import PrecisionKind, QuantSpec, parse_precision
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized, float_cast
from fl_sim.quantization.observers import Observer, minmax_range, mse_range, percentile_range
from fl_sim.quantization.primitives import quantize_asymmetric
from fl_sim.quantization.saliency import per_sample_abs_grad_sum, saliency, tacq_masks, top_fraction_masks


def test_percentile_matches_numpy():
    x = torch.randn(10_001, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lo, hi = percentile_range(x, 99.0)
    assert float(lo) == pytest.approx(np.percentile(x.numpy(), 1.0))
    assert float(hi) == pytest.approx(np.percentile(x.numpy(), 99.0))


def test_mse_range_clips_a_lone_outlier_and_beats_minmax():
    x = torch.cat([torch.rand(50_000, generator=torch.Generator().manual_seed(1)), torch.tensor([50.0])])
    lo, hi = mse_range(x, 4)
    assert float(hi) < 50.0
    mm = minmax_range(x)
    err = lambda r: float(((quantize_asymmetric(x, 4, *r) - x) ** 2).mean())  # noqa: E731
    assert err((lo, hi)) < err(mm)


def test_calibrate_ranges_with_percentile_observer_clips_outliers():
    m = nn.Sequential(nn.Linear(1, 1))
    x = torch.cat([torch.linspace(0, 1, 9999), torch.tensor([100.0])]).reshape(-1, 1)
    lo, hi = calibrate_ranges(m, [x], Observer.PERCENTILE, 8, 99.9)["0"]
    assert float(lo) == pytest.approx(0.001, abs=1e-3) and float(hi) < 1.01


@pytest.mark.parametrize(
    "name,kind,bits",
    [
        ("fp32", PrecisionKind.FP32, None),
        ("fp16", PrecisionKind.FLOAT, 16),
        ("int3", PrecisionKind.INT, 3),
        ("tacq2", PrecisionKind.MIXED, 2),
    ],
)
def test_precision_names(name, kind, bits):
    p = parse_precision(name)
    assert (p.kind, p.bits) == (kind, bits)


@pytest.mark.parametrize("bad,msg", [("tacq9", "2..8"), ("int1", "2..16"), ("fp8", "unknown precision")])
def test_bad_precision_names(bad, msg):
    with pytest.raises(ValueError, match=msg):
        parse_precision(bad)


def test_float_cast_rounds_weights_and_inputs():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    x = torch.randn(4, 6)
    want = F.linear(x.to(torch.bfloat16).float(), lin.weight.to(torch.bfloat16).float(), lin.bias)
    with float_cast(lin, torch.bfloat16):
        assert torch.equal(lin(x), want)


def _tiny():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(7, 1, 3, 4), torch.randint(0, 3, (7,))
    return m, x, y


def test_per_sample_abs_grad_sum_equals_a_loop_over_samples():
    m, x, y = _tiny()
    got = per_sample_abs_grad_sum(m, x, y, chunk=3)
    want = {"1": torch.zeros(5, 12), "3": torch.zeros(3, 5)}
    for i in range(len(x)):
        m.zero_grad()
        F.cross_entropy(m(x[i : i + 1]), y[i : i + 1]).backward()
        want["1"] += m[1].weight.grad.abs()
        want["3"] += m[3].weight.grad.abs()
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6)


def test_top_fraction_is_global_across_layers():
    scores = {"a": torch.tensor([1.0, 9.0, 2.0]), "b": torch.tensor([[8.0, 0.5], [7.0, 0.1]])}
    masks = top_fraction_masks(scores, 3 / 7)
    assert masks["a"].tolist() == [False, True, False]
    assert masks["b"].tolist() == [[True, False], [True, False]]


def test_tacq_keeps_the_salient_weights_in_16_bit():
    m, x, y = _tiny()
    spec = QuantSpec(bits=2)
    masks = tacq_masks(m, spec, x, y, 0.1)
    assert sum(int(v.sum()) for v in masks.values()) == round(0.1 * (60 + 15))
    s = saliency(m, spec, per_sample_abs_grad_sum(m, x, y))
    threshold = min(float(s[k][masks[k]].min()) for k in masks if masks[k].any())
    assert all(float(s[k][~masks[k]].max()) <= threshold for k in masks)
    # Kept weights enter the layer at their 16-bit value: compare the layer outputs.
    with fake_quantized(m, QuantSpec(bits=2, quantize_activations=False), keep=masks):
        out = m[1](x.flatten(1))
    from fl_sim.quantization.primitives import quantize_symmetric

    w = torch.where(masks["1"], m[1].weight.half().float(), quantize_symmetric(m[1].weight, 2))
    assert torch.allclose(out, F.linear(x.flatten(1), w, m[1].bias), atol=1e-6)
