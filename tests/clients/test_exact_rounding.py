"""Omniscient qat_rounding's placement on real honest updates, checked against independent aggregates:
numpy's median for the order rules, the example-weighted mean for FedAvg, Krum's own pick through the
server-side adversary."""

import numpy as np
import pytest
import torch

from fl_sim.clients.exact_rounding import ExactPlacer, KnownRound, place
from fl_sim.clients.qat_rounding import RoundingParams
from fl_sim.clients.rule_models import RULE_MODELS
from fl_sim.components import BEHAVIOURS
from fl_sim.data.federated import federated_data
from fl_sim.errors import UserError
from fl_sim.quantization.intervals import WeightQuantizer, quant_grid
from fl_sim.quantization.rounding import nearest
from fl_sim.server.adversary import Adversary, Workbench
from fl_sim.server.loop import initial_model
from strategies.krum import krum_scores
from tests.conftest import scenario_of, tiny_raw, wired

Q = WeightQuantizer(4)


def _round(seed: int = 0, m: int = 8, spread: float = 0.02):
    """A reference model {w, b}, m honest models around it, their example counts."""
    g = torch.Generator().manual_seed(seed)
    ref = {"w": torch.randn(6, 20, generator=g, dtype=torch.float64), "b": torch.randn(6, generator=g, dtype=torch.float64)}
    honest = [{k: v + spread * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in ref.items()} for _ in range(m)]
    counts = [float(c) for c in torch.randint(50, 150, (m,), generator=g)]
    return ref, honest, counts


def _wish(ref: dict, h: dict, share: float = 0.5, seed: int = 1) -> tuple[dict, torch.Tensor]:
    """Ask for the other neighbour of h's integer (the one across the nearest boundary) on ``share`` of the weights."""
    grid = quant_grid(h["w"], Q)
    p = h["w"] / grid.step
    here = nearest(h["w"], grid)
    other = torch.where(p >= here, here + 1, here - 1).clamp(grid.qmin, grid.qmax)
    asked = torch.rand(h["w"].shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < share
    wish = {"w": torch.where(asked, other * grid.step, ref["w"]), "b": ref["b"].clone()}
    return wish, asked & (other != here)


def _known(ref, honest, counts, k=2, replica=None):
    return KnownRound(ref, honest, counts, k, 100.0, ["w"], replica)


def _np_median(states: list[dict], key: str) -> torch.Tensor:
    return torch.from_numpy(np.median(np.stack([s[key].numpy() for s in states]), axis=0))


def test_median_placement_lands_exactly_the_flips_the_real_order_statistics_reach():
    ref, honest, counts = _round(spread=0.1)
    c0 = {k: sum(w * s[k] for s, w in zip(honest, counts)) / sum(counts) for k in ref}
    h = {k: _np_median(honest + [c0, c0], k) for k in ref}
    wish, asked = _wish(ref, h)
    asked &= h["w"].abs() < h["w"].abs().max()  # the scale-setting extreme is never moved
    placed = place(_known(ref, honest, counts), wish, RULE_MODELS["fedmedian"], Q, 0.05, None)
    agg = _np_median(honest + [placed.submission] * 2, "w")
    # reach, independently: the median with both colluders at -inf / +inf
    low = _np_median(honest + [{"w": ref["w"] - 1e3}] * 2, "w")
    high = _np_median(honest + [{"w": ref["w"] + 1e3}] * 2, "w")
    grid = quant_grid(h["w"], Q)
    desired = nearest(wish["w"], grid)
    edge = (desired.double() - 0.5 * torch.sign(desired - nearest(h["w"], grid)).double()) * grid.step  # the boundary crossed
    reachable = asked & (edge > low) & (edge < high)
    landed = asked & (nearest(agg, quant_grid(agg, Q)) == desired)
    assert placed.exact is False and placed.wanted == int(asked.sum()) > 0
    assert 0 < placed.landed == int(landed.sum())
    # every flip the real order statistics reach with room for the margin lands, none beyond them
    assert not bool((landed & ~reachable).any())
    roomy = asked & (edge - 0.05 * grid.step > low) & (edge + 0.05 * grid.step < high)
    assert bool((landed | ~roomy).all())
    assert placed.collateral == 0 and torch.equal(nearest(agg, grid)[~asked], nearest(h["w"], grid)[~asked])


def test_fedavg_placement_lands_every_wanted_flip_with_sub_step_moves():
    ref, honest, counts = _round(1)
    k, cc = 2, 100.0

    def fedavg(c: dict) -> dict:
        w = counts + [cc] * k
        return {key: sum(x * s[key] for s, x in zip(honest + [c] * k, w)) / sum(w) for key in ref}

    h = fedavg(_c0(honest, counts))
    wish, _ = _wish(ref, h)
    placed = place(_known(ref, honest, counts, replica=fedavg), wish, RULE_MODELS["fedavg"], Q, 0.05, None)
    assert placed.exact and placed.budget is None
    assert placed.landed == placed.kept == placed.wanted > 0 and placed.collateral == 0
    agg = fedavg(placed.submission)
    grid = quant_grid(h["w"], Q)
    moved = (agg["w"] - h["w"]).abs() / grid.step
    flipped = nearest(agg["w"], grid) != nearest(h["w"], grid)
    assert float(moved.max()) < 1.0 and torch.equal(moved > 1e-9, flipped)  # only the flips move, each by under a step
    assert torch.allclose(agg["b"], h["b"])  # what is not quantized stays honest


def test_a_screen_that_takes_no_candidate_leaves_the_honest_mean():
    ref, honest, counts = _round(1)
    wish, _ = _wish(ref, _c0(honest, counts))
    placed = place(_known(ref, honest, counts), wish, RULE_MODELS["quant_aware"], Q, 0.05, None, accept=lambda c: False)
    assert placed.kept == 0 and all(torch.allclose(placed.submission[k], _c0(honest, counts)[k]) for k in ref)


def test_the_screen_keeps_the_largest_placement_it_accepts():
    ref, honest, counts = _round(1)
    c0 = _c0(honest, counts)
    wish, _ = _wish(ref, c0)

    def distance(c):
        return float(sum((c[k] - c0[k]).pow(2).sum() for k in c0)) ** 0.5

    unbounded = place(_known(ref, honest, counts), wish, RULE_MODELS["quant_aware"], Q, 0.05, None)
    limit = distance(unbounded.submission) / 3
    placed = place(
        _known(ref, honest, counts), wish, RULE_MODELS["quant_aware"], Q, 0.05, None, accept=lambda c: distance(c) <= limit
    )
    assert 0 < placed.kept < unbounded.kept and distance(placed.submission) <= limit
    assert placed.budget is not None  # a rung of the ladder, in honest spreads


def _c0(honest, counts):
    return {k: sum(w * s[k] for s, w in zip(honest, counts)) / sum(counts) for k in honest[0]}


@pytest.mark.parametrize("rule", ["krum", "fedtrimmedavg"])
def test_the_adversary_learns_and_places_the_rounding_on_the_real_round(rule):
    raw = tiny_raw(
        federation={"num_clients": 10, "rounds": 1},
        strategy={"name": rule},
        attack={"behaviour": "qat_rounding", "collusion": "omniscient", "num_malicious": 2, "start_round": 1},
    )
    raw["attack"]["params"] = {"against": "strategy", "epochs": 1, "lr": 0.01}
    s = scenario_of(raw, "t")
    plan = wired(s).clients.attack
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    model = initial_model(s, data)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    bad = sorted(plan.malicious)
    replies = []
    for pid in range(10):  # honest models spread around the reference; the colluders' replies are ignored
        st = {
            k: v + 0.05 * v.abs().mean() * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in ref.items()
        }
        replies.append((pid, st, 60.0))
    adversary = Adversary(s, plan, lambda m: 0, Workbench(initial_model(s, data), data, torch.device("cpu")))
    new = adversary.rewrite_states(1, replies, ref)
    assert sorted(new) == bad and all(torch.equal(new[bad[0]][key], new[bad[1]][key]) for key in ref)
    placed = adversary.placement[1]
    assert placed["exact"] == 1.0 and 0 < placed["landed"] <= placed["kept"] <= placed["wanted"]
    if rule == "krum":
        # Krum's own scores on the round: a colluder is picked, so the aggregate is the submission
        honest = [st for pid, st, _ in replies if pid not in bad]
        keys = [k for k, v in ref.items() if v.is_floating_point()]
        x = torch.stack([torch.cat([(st[k] - ref[k]).flatten() for k in keys]) for st in honest + [new[bad[0]]] * 2])
        assert int(krum_scores(x.double(), 2).argmin()) >= len(honest)


def test_qat_rounding_takes_omniscient_collusion_but_not_independent():
    raw = tiny_raw(attack={"behaviour": "qat_rounding", "collusion": "independent", "params": {}})
    raw["attack"]["params"] = {}
    with pytest.raises(UserError, match="aggregation_aware.*omniscient"):
        scenario_of(raw, "t")
    raw["attack"]["collusion"] = "omniscient"
    assert scenario_of(raw, "t").attack.collusion.value == "omniscient"
    assert isinstance(BEHAVIOURS.get("qat_rounding")(RoundingParams()), ExactPlacer)
