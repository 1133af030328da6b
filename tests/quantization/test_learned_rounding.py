"""Learned rounding (AdaRound) and EFRAP's error-guided flipped start, on hand-made layers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.quantization.intervals import QuantGrid, WeightQuantizer, integers, quant_grid
from fl_sim.quantization.learned_rounding import (
    RoundingConfig,
    flipped_neurons,
    grid_values,
    latent_for,
    learn_layer_rounding,
    reconstruct_rounding,
    rectified_sigmoid,
    start_fraction,
    truncation_error,
)
from fl_sim.quantization.rounding import nearest


def _grid(step: float = 1.0) -> QuantGrid:
    return QuantGrid(step=torch.tensor(step), zero_point=torch.tensor(0.0), qmin=-8, qmax=7)


def test_truncation_error_sums_each_neurons_distance_to_its_nearest_integer():
    w = torch.tensor([[0.1, 1.2, -2.4], [0.45, -0.45, 3.0]])
    err = truncation_error(w, _grid())
    assert torch.allclose(err, torch.tensor([0.1 + 0.2 + 0.4, 0.45 + 0.45 + 0.0]))


def test_efrap_flips_the_neurons_with_the_largest_truncation_error():
    # Neuron 1 sits near its rounding boundaries (error 0.9 steps in all), neurons 0 and 2 near integers.
    w = torch.tensor([[1.05, -0.9, 2.0], [0.45, -1.45, 2.0], [0.1, 0.0, -1.1]])
    g = _grid()
    assert flipped_neurons(w, g, 1 / 3).tolist() == [False, True, False]
    assert flipped_neurons(w, g, 0.0).tolist() == [False, False, False]
    start = start_fraction(w, g, flipped_neurons(w, g, 1 / 3))
    # Unflipped rows keep their fraction above floor(p); the flipped row is mirrored: its h starts on the
    # other side of 1/2, i.e. at the non-nearest integer.
    assert torch.allclose(start[0], torch.tensor([0.05, 0.1, 0.0]), atol=1e-6)
    assert torch.allclose(start[1], torch.tensor([1 - 0.45, 1 - 0.55, 1.0]), atol=1e-6)
    rounded = torch.floor(w) + (start >= 0.5).float()
    # Every weight of the flipped neuron starts at its non-nearest neighbour (nearest: 0, -1, 2).
    assert torch.equal(rounded[1], torch.tensor([1.0, -2.0, 3.0]))
    assert torch.equal(rounded[0], torch.round(w[0]))
    with pytest.raises(ValueError, match="flip share"):
        flipped_neurons(w, g, 1.5)


def test_latent_inverts_the_rectified_sigmoid_inside_the_unit_interval():
    h = torch.tensor([0.05, 0.3, 0.5, 0.9])
    assert torch.allclose(rectified_sigmoid(latent_for(h)), h, atol=1e-6)


def test_learned_rounding_reconstructs_a_linear_layer_at_least_as_well_as_nearest():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 20, generator=gen)
    q = WeightQuantizer(3)
    g = quant_grid(w, q)
    x = torch.randn(256, 20, generator=gen)
    target = F.linear(x, w)
    held = w.abs() == w.abs().max()
    cfg = RoundingConfig(steps=400, lr=0.05, batch_size=64)
    ints = learn_layer_rounding(w, g, lambda a, b: F.linear(a, b), x, target, start_fraction(w, g), held, cfg, gen)
    near = nearest(w, g)
    floor = torch.clamp(torch.floor(w / g.step), g.qmin, g.qmax - 1)
    assert bool(((ints == floor) | (ints == floor + 1)).all())  # one of the two neighbours, always
    assert torch.equal(ints[held], near[held])  # the scale-setting extreme keeps its integer
    err = lambda i: float(F.mse_loss(F.linear(x, grid_values(i, g)), target))  # noqa: E731
    assert err(ints) < err(near)
    assert int((ints != near).sum()) > 0


def test_reconstructed_model_sits_on_the_deployers_grid_and_efrap_changes_roundings():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(128, 12)
    q = WeightQuantizer(4)
    cfg = RoundingConfig(steps=50)
    for share in (0.0, 0.5):
        out = reconstruct_rounding(model, q, x, lambda _n, t: t, cfg, share, torch.Generator().manual_seed(1))
        for (name, orig), (_, new) in zip(model.named_parameters(), out.named_parameters()):
            if not name.endswith("weight"):
                assert torch.equal(orig, new)  # biases untouched
                continue
            g = quant_grid(orig, q)
            assert torch.allclose(quant_grid(new, q).step, g.step)  # same scale: extremes kept
            assert torch.allclose(grid_values(integers(new, q), g), new, atol=1e-6)  # re-quantizing changes nothing
        for p in model.parameters():
            assert p.requires_grad  # the original model is left as it was
    assert not torch.equal(
        out[0].weight, grid_values(nearest(model[0].weight, quant_grid(model[0].weight, q)), quant_grid(model[0].weight, q))
    )


def test_rounding_config_refuses_bad_schedules():
    with pytest.raises(ValueError, match="beta"):
        RoundingConfig(beta_start=1.0, beta_end=2.0)
    with pytest.raises(ValueError, match="steps"):
        RoundingConfig(steps=0)
