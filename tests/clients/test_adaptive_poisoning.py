"""Optimal ALIE / IPM and Fang et al.'s attacks: the searches and the 1-D cases computed by hand."""

import math

import pytest
import torch

import strategies  # noqa: F401  (registers the rule replicas)
from fl_sim.clients import adaptive_poisoning as ap
from fl_sim.clients import model_poisoning as mp
from fl_sim.clients.crafted import alie_z_for
from fl_sim.rule_replicas import simulate


def _rule(spec: str, f: int):
    return lambda x: simulate(spec, x, f, torch.Generator().manual_seed(0))


def test_search_scale_finds_an_interior_maximum_and_an_edge():
    assert ap.search_scale(lambda x: -((x - 3.3) ** 2), 10.0) == pytest.approx(3.3, abs=1e-3)
    assert ap.search_scale(lambda x: x, 10.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="max_scale"):
        ap.search_scale(lambda x: x, 0.0)


def test_fang_trimmed_full_knowledge_by_hand():
    g = torch.Generator().manual_seed(0)
    # coordinate 0: honest 1, 2, 3 (s > 0, w_min = 1 > 0) -> in [0.5, 1]
    # coordinate 1: honest -1, -2, -3 (s < 0, w_max = -1 <= 0) -> in [-1, -0.5]
    # coordinate 2: honest -1, 2, 5 (s > 0, w_min = -1 <= 0) -> in [-2, -1]
    # coordinate 3: honest 1, -2, -5 (s < 0, w_max = 1 > 0) -> in [1, 2]
    honest = torch.tensor([[1.0, -1.0, -1.0, 1.0], [2.0, -2.0, 2.0, -2.0], [3.0, -3.0, 5.0, -5.0]])
    lo, hi = torch.tensor([0.5, -1.0, -2.0, 1.0]), torch.tensor([1.0, -0.5, -1.0, 2.0])
    draws = torch.stack([ap.fang_trimmed_full(honest, g) for _ in range(200)])
    assert bool(((draws >= lo) & (draws <= hi)).all())
    assert bool((draws.max(0).values - draws.min(0).values > 0.8 * (hi - lo)).all())  # uniform over the interval


def test_fang_trimmed_partial_knowledge_by_hand():
    own = torch.tensor([[1.0], [3.0]])  # mu 2, sigma sqrt(2), s > 0 -> [2 - 4 sqrt 2, 2 - 3 sqrt 2]
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([ap.fang_trimmed_partial(own, g) for _ in range(100)]).flatten()
    r = math.sqrt(2)
    assert float(draws.min()) >= 2 - 4 * r - 1e-6 and float(draws.max()) <= 2 - 3 * r + 1e-6


def test_fang_lambda_bound_by_hand():
    # honest 0, 1, 3 in 1-D, c = 1, m = 4: Gamma_i = the m - c - 2 = 1 nearest honest; sums 1, 1, 2 -> min 1;
    # 1 / ((m - 2c - 1) sqrt d) = 1; max_i |w_i| / sqrt d = 3 -> 4
    assert ap.fang_lambda_bound(torch.tensor([[0.0], [1.0], [3.0]]), 1) == pytest.approx(4.0)


def test_fang_krum_is_picked_by_krum_and_goes_against_the_honest_direction():
    g = torch.Generator().manual_seed(2)
    honest = 0.1 + 0.3 * torch.randn(7, 50, generator=g, dtype=torch.float64)  # spread > mean: Krum can be fooled
    update, lam = ap.fang_krum(honest, 3, _rule("krum", 3))
    assert lam > 0
    x = torch.cat([honest, update.expand(3, -1)])
    assert torch.equal(simulate("krum", x, 3, torch.Generator()), update)  # Krum selects it
    assert float(update @ honest.mean(0)) < 0
    # the largest selected lambda of the halving sequence: twice as far is no longer selected
    x2 = torch.cat([honest, (2 * update).expand(3, -1)])
    assert not torch.equal(simulate("krum", x2, 3, torch.Generator()), 2 * update)


@pytest.mark.parametrize("rule", ["fedmedian", "fedtrimmedavg", "krum", "centered_clipping", "nnm+fedtrimmedavg"])
def test_optimal_variants_deviate_at_least_as_much_as_the_fixed_ones(rule):
    g = torch.Generator().manual_seed(3)
    honest = 0.1 + 0.05 * torch.randn(7, 40, generator=g, dtype=torch.float64)
    agg = _rule(rule, 3)
    fixed_alie = mp.alie(honest, alie_z_for(10, 3))
    best_alie, z = ap.optimal_alie(honest, 3, agg, 10.0, candidates=(alie_z_for(10, 3),))
    assert ap.deviation(agg, honest, best_alie, 3) >= ap.deviation(agg, honest, fixed_alie, 3) - 1e-12
    for eps in (0.5, 5.0):
        best_ipm, _ = ap.optimal_ipm(honest, 3, agg, 20.0, candidates=(eps,))
        assert ap.deviation(agg, honest, best_ipm, 3) >= ap.deviation(agg, honest, mp.ipm(honest, eps), 3) - 1e-12
    assert 0 <= z <= 10
