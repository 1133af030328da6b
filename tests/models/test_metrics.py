"""Metrics on hand-made predictions."""

import pytest
import torch

from fl_sim.data.triggers import apply_patch
from fl_sim.models.metrics import accuracy, attack_success_rate, per_class_accuracy


def test_asr_excludes_target_class():
    y = torch.tensor([0, 0, 1, 2, 2])
    pred_t = torch.tensor([0, 0, 0, 2, 0])
    assert attack_success_rate(pred_t, y, target=0) == pytest.approx(2 / 3)


def test_accuracy_and_per_class():
    y = torch.tensor([0, 1, 1, 2])
    p = torch.tensor([0, 1, 0, 0])
    assert accuracy(p, y) == 0.5
    assert per_class_accuracy(p, y, 4) == [1.0, 0.5, 0.0, None]


def test_patch_trigger_bottom_right_with_margin():
    x = torch.zeros(2, 1, 8, 8)
    out = apply_patch(x, size=2, margin=1, value=1.0)
    assert out[0, 0, 5:7, 5:7].eq(1).all() and out.sum() == 2 * 4
    assert x.sum() == 0
