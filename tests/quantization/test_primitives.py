"""Fake-quantization primitives against PyTorch's own fake_quantize ops and hand-computed cases."""

import torch

from fl_sim.quantization.primitives import quantize_asymmetric, quantize_symmetric


def test_symmetric_matches_hand_computed():
    t = torch.tensor([-1.0, -0.5, 0.1, 0.26, 1.0])
    # b = 3: qmax = 3, s = 3 / 1 -> round(t*3) = [-3, -2 (banker's -1.5 -> -2), 0, 1, 3] / 3
    out = quantize_symmetric(t, 3)
    assert torch.allclose(out, torch.tensor([-1.0, -2 / 3, 0.0, 1 / 3, 1.0]))


def test_symmetric_matches_torch_per_tensor():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(1000, generator=g)
    for bits in (2, 4, 8):
        qmax = 2 ** (bits - 1) - 1
        scale = float(t.abs().max()) / qmax
        ref = torch.fake_quantize_per_tensor_affine(t, scale, 0, -qmax - 1, qmax)
        assert torch.allclose(quantize_symmetric(t, bits), ref, atol=1e-6)


def test_symmetric_per_channel_matches_torch():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 3, 3, 3, generator=g) * torch.arange(1, 7).view(6, 1, 1, 1)
    bits, qmax = 4, 7
    scales = w.abs().amax(dim=(1, 2, 3)) / qmax
    ref = torch.fake_quantize_per_channel_affine(w, scales, torch.zeros(6, dtype=torch.int32), 0, -qmax - 1, qmax)
    assert torch.allclose(quantize_symmetric(w, bits, per_channel=True), ref, atol=1e-6)


def test_asymmetric_matches_torch_per_tensor():
    g = torch.Generator().manual_seed(2)
    t = torch.rand(500, generator=g) * 3 - 0.5
    for bits in (4, 8):
        levels = 2**bits - 1
        lo, hi = float(t.min()), float(t.max())
        scale = (hi - lo) / levels
        # torch: q = clamp(round(t/scale) + zp, 0, levels) with zp = -round(lo/scale)
        zp = int(round(-lo / scale))
        ref = torch.fake_quantize_per_tensor_affine(t, scale, zp, 0, levels)
        assert torch.allclose(quantize_asymmetric(t, bits), ref, atol=1e-5)


def test_calibrated_range_clamps_outliers():
    t = torch.tensor([0.0, 0.5, 1.0, 5.0])
    out = quantize_asymmetric(t, 8, lo=torch.tensor(0.0), hi=torch.tensor(1.0))
    assert float(out.max()) == 1.0


def test_straight_through_gradient_is_identity():
    t = torch.randn(20, requires_grad=True)
    (quantize_symmetric(t, 4) * torch.arange(20.0)).sum().backward()
    assert torch.equal(t.grad, torch.arange(20.0))
