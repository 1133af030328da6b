"""Rounding directions on a hand-made grid: the neighbour box, the crossing point, the flip cost."""

import pytest
import torch

from fl_sim.quantization.intervals import QuantGrid
from fl_sim.quantization.rounding import crossing, flip_cost, nearest, neighbour_box, positions

# step 0.1, symmetric 4-bit range [-8, 7]
GRID = QuantGrid(step=torch.tensor(0.1, dtype=torch.float64), zero_point=torch.tensor(0.0, dtype=torch.float64), qmin=-8, qmax=7)


def test_positions_and_nearest_by_hand():
    w = torch.tensor([0.0, 0.14, 0.16, -0.26, 0.9], dtype=torch.float64)
    assert torch.allclose(positions(w, GRID), torch.tensor([0.0, 1.4, 1.6, -2.6, 9.0], dtype=torch.float64))
    assert nearest(w, GRID).tolist() == [0, 1, 2, -3, 7]  # 9 is clamped to qmax


def test_neighbour_box_spans_the_two_neighbouring_integers_of_free_weights_only():
    w = torch.tensor([0.14, 0.16, -0.26, 0.05], dtype=torch.float64)
    free = torch.tensor([True, True, True, False])
    box = neighbour_box(w, GRID, free)
    assert torch.allclose(box.lo, torch.tensor([0.1, 0.1, -0.3, 0.05], dtype=torch.float64))
    assert torch.allclose(box.hi, torch.tensor([0.2, 0.2, -0.2, 0.05], dtype=torch.float64))
    assert box.q.tolist() == [1, 2, -3, 0]


def test_crossing_lands_margin_steps_inside_the_target_interval():
    w = torch.tensor([0.14, 0.14, 0.16], dtype=torch.float64)
    target = torch.tensor([2, 1, 1])
    got = crossing(w, target, GRID, 0.1)
    # 0.14 -> integer 2 needs position >= 1.5 + 0.1; already at integer 1 with 0.1 to spare: stays;
    # 0.16 -> integer 1 needs position <= 1.5 - 0.1
    assert torch.allclose(got, torch.tensor([0.16, 0.14, 0.14], dtype=torch.float64))
    assert nearest(got, GRID).tolist() == target.tolist()
    with pytest.raises(ValueError, match="margin"):
        crossing(w, target, GRID, 0.5)


def test_flip_cost_is_the_signed_move_to_the_other_neighbour_with_margin():
    w = torch.tensor([0.14, 0.16, -0.26, 0.72], dtype=torch.float64)
    cost = flip_cost(w, GRID, torch.tensor(0.05, dtype=torch.float64))
    assert torch.allclose(cost[:3], torch.tensor([0.015, -0.015, 0.015], dtype=torch.float64))
    # 0.72 rounds to 7 = qmax from above: its other neighbour, 8, is out of range
    assert cost[3] == float("inf")
    flipped = nearest(w[:3] + cost[:3], GRID)
    assert (flipped != nearest(w[:3], GRID)).all()
