"""LAC-style activation correction on layers whose activations are known."""

import contextlib

import pytest
import torch
from torch import nn

from fl_sim.quantization.activation_correction import (
    Corrected,
    channel_stats,
    correct_activations,
    correction_for,
)


def test_channel_stats_reduce_everything_but_the_channel_dimension():
    y = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[5.0, 7.0], [2.0, -2.0]]])  # (N=2, C=2, L=2)
    s = channel_stats(y)
    assert torch.allclose(s.mean, torch.tensor([4.0, 0.0]))
    assert torch.allclose(s.std, torch.tensor([5**0.5, 2**0.5]))
    assert s.lo.tolist() == [1.0, -2.0] and s.hi.tolist() == [7.0, 2.0]
    # A Linear layer on token sequences (N, L, C): the channels are the last dimension.
    assert torch.allclose(channel_stats(y.transpose(1, 2), dim=-1).mean, s.mean)


def test_correction_maps_an_affinely_distorted_channel_back_exactly():
    fp = torch.randn(500, 3)
    quantized = 2.0 * fp + torch.tensor([1.0, -3.0, 0.5])  # known distortion of each channel
    c = correction_for(channel_stats(fp), channel_stats(quantized), slack=0.0, clip=True)
    assert torch.allclose(c.scale, torch.full((3,), 0.5), atol=1e-5)
    assert torch.allclose(c(quantized), fp, atol=1e-5)
    # A triggered input that drives channel 0 far beyond its clean range is clipped to the FP maximum.
    spike = quantized[:1].clone()
    spike[0, 0] = 100.0
    assert float(c(spike)[0, 0]) == pytest.approx(float(fp[:, 0].max()))
    with pytest.raises(ValueError, match="slack"):
        correction_for(channel_stats(fp), channel_stats(quantized), slack=-1.0, clip=True)


def test_correct_activations_undoes_a_quantizer_that_doubles_a_layers_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(100, 3, 5)  # sequences of 3 tokens: a Linear's channels are its last dimension

    @contextlib.contextmanager
    def doubling(m):  # a stand-in "quantizer" whose effect is known: every Linear's output doubled
        handles = [
            layer.register_forward_hook(lambda _m, _a, out: out * 2) for layer in m.modules() if isinstance(layer, nn.Linear)
        ]
        try:
            yield m
        finally:
            for h in handles:
                h.remove()

    fixed = correct_activations(model, doubling, x, slack=0.1, clip=True)
    assert isinstance(fixed[0], Corrected) and isinstance(fixed[2], Corrected)
    assert torch.allclose(fixed[0].correction.scale, torch.full((4,), 0.5), atol=1e-4) and fixed[0].correction.scale.shape == (4,)
    with torch.no_grad(), doubling(fixed):
        assert torch.allclose(fixed(x), model(x), atol=1e-4)
    assert isinstance(model[0], nn.Linear)  # the original is untouched
