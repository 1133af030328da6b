"""Noise before rounding: its scale is in steps of each layer's own grid, and the weights come back."""

import torch
from torch import nn

from fl_sim.quantization.intervals import WeightQuantizer, quant_grid
from fl_sim.quantization.weight_noise import weight_noise


def test_noise_is_sigma_steps_of_each_layers_grid_and_is_removed_on_exit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 100), nn.Linear(100, 50))
    with torch.no_grad():
        model[1].weight.mul_(10)  # a layer with a 10x coarser grid
    before = [m.weight.detach().clone() for m in model]
    q = WeightQuantizer(4)
    with weight_noise(model, q, 0.25, torch.Generator().manual_seed(1)):
        for m, w in zip(model, before):
            step = float(quant_grid(w, q).step)
            moved = (m.weight.detach() - w) / step
            assert abs(float(moved.std()) - 0.25) < 0.01 and abs(float(moved.mean())) < 0.01
    for m, w in zip(model, before):
        assert torch.equal(m.weight, w)
