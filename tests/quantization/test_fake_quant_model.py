"""Whole-model fake quantization: layers are rewritten inside the context and restored after."""

import torch
from torch import nn

from fl_sim.config.precision import QuantSpec
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized
from fl_sim.quantization.primitives import quantize_asymmetric, quantize_symmetric


def test_linear_layer_computes_quantized_op_and_restores():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    x = torch.randn(4, 5)
    expected = nn.functional.linear(quantize_asymmetric(x, 4), quantize_symmetric(lin.weight, 4), lin.bias)
    with fake_quantized(lin, QuantSpec(bits=4)):
        got = lin(x)
    assert torch.allclose(got, expected)
    assert torch.allclose(lin(x), nn.functional.linear(x, lin.weight, lin.bias))


def test_16_bits_is_close_to_fp_and_2_bits_is_not():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = torch.rand(8, 1, 8, 8)
    fp = m(x)
    with fake_quantized(m, QuantSpec(bits=16)):
        q16 = m(x)
    with fake_quantized(m, QuantSpec(bits=2)):
        q2 = m(x)
    assert (q16 - fp).abs().max() < 1e-3
    assert (q2 - fp).abs().max() > 1e-2


def test_calibrated_ranges_cover_all_batches():
    m = nn.Sequential(nn.Linear(2, 2))
    ranges = calibrate_ranges(m, [torch.tensor([[0.0, 1.0]]), torch.tensor([[-2.0, 0.5]])])
    lo, hi = ranges["0"]
    assert float(lo) == -2.0 and float(hi) == 1.0


def test_reused_weights_follow_in_place_updates():
    """Inference reuses each quantized weight; an in-place change of the weight is still seen."""
    import torch
    from torch import nn

    from fl_sim.config.precision import QuantSpec
    from fl_sim.quantization.fake_quant_model import fake_quantized

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x = torch.randn(5, 4)
    with torch.no_grad(), fake_quantized(model, QuantSpec(bits=4, quantize_activations=False)):
        first = model(x)
        assert torch.equal(model(x), first)
        model[0].weight.mul_(2.0)
        second = model(x)
    with torch.no_grad(), fake_quantized(model, QuantSpec(bits=4, quantize_activations=False)):
        assert torch.equal(model(x), second)  # what a fresh context computes
    assert not torch.equal(first, second)
