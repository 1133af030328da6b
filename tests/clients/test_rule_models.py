"""The colluders' models of the aggregation rules: order statistics by hand, the bisection, gains, budgets."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fl_sim.clients.rounding_placement import honest_spread, select_flips, submission
from fl_sim.clients.rule_models import (
    RULE_MODELS,
    Family,
    RuleModel,
    Statistic,
    blom_scores,
    order_aggregate,
    order_reach,
    solve_order,
)


def test_blom_scores_are_symmetric_normal_order_statistics():
    z = blom_scores(8)
    assert torch.allclose(z, -z.flip(0))
    assert z[4] == pytest.approx(stats.norm.ppf((5 - 0.375) / 8.25))
    assert blom_scores(1).tolist() == [0.0]


def test_order_aggregate_matches_numpy_median_and_scipy_trimmed_mean():
    x = torch.randn(10, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    med = order_aggregate(x, Statistic.MEDIAN, 0.2)
    assert np.allclose(med.numpy(), np.median(x.numpy(), axis=0))
    trimmed = order_aggregate(x, Statistic.TRIMMED, 0.2)
    assert np.allclose(trimmed.numpy(), stats.trim_mean(x.numpy(), 0.2, axis=0))


def test_solve_order_hits_reachable_targets_and_flags_the_others():
    honest = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0]], dtype=torch.float64)
    rule = RuleModel(Family.ORDER, statistic=Statistic.MEDIAN)
    # 8 honest values 0..7 and 2 colluders: the median moves between (2+3)/2 and (4+5)/2
    target = torch.tensor([3.2, 4.4, 4.6, 2.4], dtype=torch.float64)
    c, reached = solve_order(honest.expand(8, 4).clone(), 2, target, rule)
    assert reached.tolist() == [True, True, False, False]
    again = order_aggregate(torch.cat([honest.expand(8, 4), c.expand(2, 4)]), Statistic.MEDIAN, 0.2)
    assert torch.allclose(again[:2], target[:2], atol=1e-9)
    down, up = order_reach(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), 10, 2, rule)
    z = blom_scores(8)
    assert float(up) == pytest.approx(float((z[4] + z[5]) / 2))
    assert float(down) == pytest.approx(float(up))


def test_gains_errors_and_budgets_by_hand():
    mean, krum, multi = RULE_MODELS["fedavg"], RULE_MODELS["krum"], RULE_MODELS["multikrum"]
    assert mean.gain(10, 2) == pytest.approx(0.2) and krum.gain(10, 2) == 1.0 and multi.gain(10, 2) == pytest.approx(0.25)
    sigma = torch.ones(3)
    assert torch.allclose(krum.error(sigma, 10, 2, 4), torch.zeros(3))
    assert float(mean.error(sigma, 10, 2, 4)[0]) == pytest.approx(0.8 * math.sqrt(1 / 8 + 1 / 4))
    assert mean.budget_for(10, 2, 4) is None
    assert krum.budget_for(10, 2, 4) == pytest.approx(0.8 * math.sqrt(1 - 1 / 4 - 1 / 8))
    assert RULE_MODELS["norm_clipping"].budget_for(10, 2, 4) == 1.0


def test_honest_spread_is_the_rms_distance_of_a_run_from_the_mean():
    runs = [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([-1.0, 0.0])}]
    sigma, spread = honest_spread(runs, {"w": torch.zeros(2)}, ["w"])
    assert torch.allclose(sigma["w"], torch.tensor([math.sqrt(2), 0.0]))
    assert spread == pytest.approx(math.sqrt(2))


def test_select_flips_spends_the_budget_on_the_most_useful_per_squared_cost():
    wanted = {"w": torch.tensor([True, True, True, False])}
    useful = {"w": torch.tensor([1.0, 1.0, 4.0, 9.0])}
    cost = {"w": torch.tensor([0.1, 0.3, 0.3, 0.01])}
    # scores 1/0.01 = 100, 1/0.09 = 11, 4/0.09 = 44; budget^2 = 0.105 fits 0.01 + 0.09 only
    kept = select_flips(wanted, useful, cost, gain=1.0, budget=math.sqrt(0.105))
    assert kept["w"].tolist() == [True, False, True, False]
    assert select_flips(wanted, useful, cost, 1.0, None)["w"].tolist() == wanted["w"].tolist()
    # a gain of 0.5 doubles each colluder move: only the cheapest fits
    assert select_flips(wanted, useful, cost, gain=0.5, budget=math.sqrt(0.1))["w"].tolist() == [True, False, False, False]


def test_submission_lands_the_modelled_aggregate_on_the_target():
    h = {"w": torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)}
    target = {"w": torch.tensor([0.1, 1.0, 1.9], dtype=torch.float64)}
    moved = {"w": torch.tensor([True, False, True])}
    sigma = {"w": torch.ones(3, dtype=torch.float64)}
    c, missed = submission(h, target, moved, sigma, RULE_MODELS["fedavg"], 10, 2)
    # FedAvg of 8 updates at h and 2 at c
    assert torch.allclose((8 * h["w"] + 2 * c["w"]) / 10, target["w"]) and missed == 0
    c, missed = submission(h, target, moved, sigma, RULE_MODELS["fedmedian"], 10, 2)
    honest = h["w"] + blom_scores(8).unsqueeze(1)
    agg = order_aggregate(torch.cat([honest, c["w"].expand(2, 3)]), Statistic.MEDIAN, 0.2)
    assert torch.allclose(agg[[0, 2]], target["w"][[0, 2]], atol=1e-9) and c["w"][1] == 1.0 and missed == 0
