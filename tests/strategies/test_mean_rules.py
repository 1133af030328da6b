"""Meamed, MDA and MoNNA on hand-made inputs, and the MoNNA pivot through the real strategy."""

import pytest
import torch

from strategies.mda import MAX_SUBSETS, mda, mda_subset
from strategies.meamed import meamed, meamed_kept
from strategies.monna import monna


def test_meamed_by_hand():
    # coordinate 0: median of [1, 2, 3, 100] is 2.5; the 3 nearest are 2, 3, 1 -> mean 2
    # coordinate 1: median of [5, -50, 6, 7] is 5.5; the 3 nearest are 5, 6, 7 -> mean 6
    x = torch.tensor([[1.0, 5.0], [2.0, -50.0], [3.0, 6.0], [100.0, 7.0]])
    agg = meamed(x, 1)
    assert agg.update.tolist() == pytest.approx([2.0, 6.0])
    kept = meamed_kept(x, 1)
    assert kept.tolist() == [[True, True], [True, False], [True, True], [False, True]]
    assert agg.weights.tolist() == pytest.approx([2 / 6, 1 / 6, 2 / 6, 1 / 6])  # share of kept coordinates


def test_mda_by_hand():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # subsets of 3: {0, 1, 2} has diameter 2, every subset with 10 or 11 has >= 8 except {10, 11, x}: >= 8
    assert mda_subset(x, 2).tolist() == [0, 1, 2]
    agg = mda(x, 2)
    assert agg.update.tolist() == pytest.approx([1.0])
    assert agg.weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0, 0])
    with pytest.raises(ValueError, match="subsets"):
        mda_subset(torch.zeros(40, 1), 20)  # C(40, 20) > MAX_SUBSETS
    assert MAX_SUBSETS < 137846528820


def test_monna_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [9.0, 9.0]])
    agg = monna(x, torch.tensor([0.5, 0.0]), 1)  # the 3 nearest to the pivot: 0, 1, 2
    assert agg.update.tolist() == pytest.approx([1 / 3, 1.0])
    assert agg.weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    agg = monna(x, torch.tensor([9.0, 8.0]), 2)  # pivot near the outlier: it is kept
    assert agg.weights[3] > 0


@pytest.mark.parametrize("rule", [meamed, mda])
def test_f_must_leave_someone(rule):
    with pytest.raises(ValueError, match="f < n"):
        rule(torch.zeros(3, 2), 3)
