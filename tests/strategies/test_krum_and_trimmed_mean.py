"""Krum / Multi-Krum (Blanchard et al. 2017) on a hand-computed 1-D case, Flower's own Krum and
Multi-Krum driven through the real strategy objects (their pick and the logged per-client weights),
and Flower's FedTrimmedAvg against scipy's trim_mean. No Ray."""

import itertools

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from scipy.stats import trim_mean

from fl_sim.server.updates import flatten_update, float_keys
from strategies.krum import krum_scores, multikrum_select, selection_weights
from tests.conftest import make_strategy, scenario_of, tiny_raw

pytestmark = pytest.mark.usefixtures("task_identity")

F64 = torch.float64


# ---- the pure maths ----


def test_hand_computed_krum_scores_and_pick():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # n = 5, f = 1: each score sums the squared distances to the n - f - 2 = 2 nearest others.
    #   0: to 1 -> 1, to 2 -> 4                 -> 5
    #   1: to 0 -> 1, to 2 -> 1                 -> 2
    #   2: to 1 -> 1, to 0 -> 4                 -> 5
    #  10: to 11 -> 1, to 2 -> 64               -> 65
    #  11: to 10 -> 1, to 2 -> 81               -> 82
    assert krum_scores(x, 1).tolist() == [5.0, 2.0, 5.0, 65.0, 82.0]
    assert multikrum_select(x, 1, 1).tolist() == [1]
    # m = 3: the three lowest; the tie 0 / 2 (both 5) is broken by index.
    assert multikrum_select(x, 1, 3).tolist() == [1, 0, 2]
    assert selection_weights(5, multikrum_select(x, 1, 3)).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0, 0])
    assert selection_weights(5, multikrum_select(x, 1, 1)).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_f_sets_the_neighbourhood_size():
    x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # f = 0: the 3 nearest. 0: 1+4+100, 1: 1+1+81, 2: 1+4+64, 10: 1+64+81, 11: 1+81+100.
    assert krum_scores(x, 0).tolist() == [105.0, 83.0, 69.0, 146.0, 182.0]
    assert multikrum_select(x, 0, 1).tolist() == [2]
    # f so large that n - f - 2 < 1: one neighbour (as in Flower's max(1, n - f - 2)).
    assert krum_scores(x, 4).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]


def _naive_scores(x: np.ndarray, f: int) -> list[float]:
    n = len(x)
    k = max(1, n - f - 2)
    out = []
    for i in range(n):
        d = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(n) if j != i)
        out.append(sum(d[:k]))
    return out


def test_scores_match_a_naive_loop():
    g = torch.Generator().manual_seed(5)
    for n, f in itertools.product([4, 7, 10], [0, 1, 2]):
        x = torch.randn(n, 6, generator=g, dtype=F64)
        np.testing.assert_allclose(krum_scores(x, f).numpy(), _naive_scores(x.numpy(), f), rtol=1e-12)


# ---- Flower's Krum / Multi-Krum / FedTrimmedAvg through the real strategy objects ----


def _reference() -> dict[str, torch.Tensor]:
    """A small model's state (Flower's rules never build the model, so its size is free)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _strategy(n: int, strategy: dict, num_malicious: int = 1):
    s = scenario_of(
        tiny_raw(federation={"num_clients": n, "rounds": 1}, attack={"num_malicious": num_malicious}, strategy=strategy), "t"
    )
    return make_strategy(s, node_of={p: 1000 + p for p in range(n)})


def _aggregate(strategy, g, states, counts):
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    assert [m.metadata.dst_node_id for m in msgs] == [1000 + p for p in range(len(states))]
    replies = [
        Message(RecordDict({"arrays": ArrayRecord(dict(s)), "metrics": MetricRecord({"num-examples": c})}), reply_to=m)
        for m, s, c in zip(msgs, states, counts)
    ]
    replies.reverse()  # arrival order must not matter: the strategy sorts by partition id
    arrays, _ = strategy.aggregate_train(1, replies)
    return arrays.to_torch_state_dict()


# 7 honest updates of different spreads around the global model, 2 far-away ones (pids 0 and 5).
# Krum's score of an honest update is about sum_j (s_i^2 + s_j^2) sigma^2 d over its nearest
# neighbours, so the honest update with the smallest spread (0.5, pid 4) has the lowest score.
SCALES = {1: 1.0, 2: 0.9, 3: 1.2, 4: 0.5, 6: 1.1, 7: 0.8, 8: 1.3}
FAR = (0, 5)
KRUM_PICK = 4


def _krum_states():
    g = _reference()
    gen = torch.Generator().manual_seed(1)
    far_dir = {k: torch.randn(v.shape, generator=gen) for k, v in g.items()}
    states = []
    for p in range(9):
        if p in FAR:
            states.append({k: v + 0.2 * far_dir[k] + 0.01 * torch.randn(v.shape, generator=gen) for k, v in g.items()})
        else:
            states.append({k: v + 0.01 * SCALES[p] * torch.randn(v.shape, generator=gen) for k, v in g.items()})
    return g, states


@pytest.mark.parametrize(
    "strategy", [{"name": "krum"}, {"name": "krum", "params": {"num_malicious": 2}}], ids=["f-from-attack", "f-from-params"]
)
def test_flower_krum_aggregates_to_the_picked_client(strategy):
    num_malicious = 2 if "params" not in strategy else 1  # f = 2 either way
    g, states = _krum_states()
    s = _strategy(9, strategy, num_malicious)
    assert s.defense.flower_strategy().num_malicious_nodes == 2
    agg = _aggregate(s, g, states, [100 + p for p in range(9)])
    keys = float_keys(g)
    flat = torch.stack([flatten_update(st, g, keys) for st in states])
    picked = int(multikrum_select(flat, 2, 1)[0])
    assert picked == KRUM_PICK
    assert all(torch.equal(agg[k], states[picked][k]) for k in g)
    assert s.round_log[1].weights == {p: (1.0 if p == KRUM_PICK else 0.0) for p in range(9)}


def test_flower_multikrum_averages_the_selected_clients_by_example_count():
    g, states = _krum_states()
    s = _strategy(9, {"name": "multikrum", "params": {"num_selected": 3}}, 2)
    counts = [100 + 10 * p for p in range(9)]
    agg = _aggregate(s, g, states, counts)
    keys = float_keys(g)
    picked = multikrum_select(torch.stack([flatten_update(st, g, keys) for st in states]), 2, 3).tolist()
    assert sorted(picked) == [2, 4, 7]  # the three smallest spreads: 0.9, 0.5, 0.8
    total = sum(counts[p] for p in picked)
    for k in g:
        expected = sum(states[p][k].double() * counts[p] / total for p in picked)
        assert torch.allclose(agg[k].double(), expected, atol=1e-6)
    # The log names the selected clients (its values are equal shares 1/m, not the count weights
    # Flower applies; only which clients are nonzero is asserted).
    assert [p for p, w in s.round_log[1].weights.items() if w > 0] == sorted(picked)


def test_flower_fedtrimmedavg_is_scipys_trim_mean():
    g = _reference()
    gen = torch.Generator().manual_seed(2)
    states = [{k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in g.items()} for _ in range(10)]
    for p in (3, 7):  # two far-off clients: the trimmed mean must differ from the mean
        states[p] = {k: v + 0.3 for k, v in states[p].items()}
    s = _strategy(10, {"name": "fedtrimmedavg", "params": {"beta": 0.2}})
    agg = _aggregate(s, g, states, [100] * 10)
    assert set(agg) == set(g)
    for k in g:
        stacked = np.stack([st[k].numpy().astype(np.float64) for st in states])
        expected = trim_mean(stacked, proportiontocut=0.2, axis=0)
        np.testing.assert_allclose(agg[k].numpy(), expected, atol=1e-6, rtol=0)
        assert np.abs(stacked.mean(axis=0) - expected).max() > 1e-2
    assert s.round_log[1].weights is None  # a coordinate-wise rule makes no per-client decision


def _nearest(agg: dict[str, torch.Tensor], states: list[dict[str, torch.Tensor]]) -> int:
    keys = float_keys(agg)
    dist = [sum(float((agg[k].double() - s[k].double()).norm() ** 2) for k in keys) for s in states]
    return min(range(len(states)), key=dist.__getitem__)


@pytest.mark.parametrize("seed", range(10))
def test_the_logged_krum_pick_is_the_model_flower_aggregated(seed):
    """Updates ~1e-3 of the model norm: Flower scores the float32 models; the log must name its pick
    (a float64 recomputation on the updates named another client in each of these 10 trials)."""
    gen = torch.Generator().manual_seed(seed)
    g = {k: 10 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in _reference().items()}
    states = [
        {k: v + 1e-3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in g.items()}
        for _ in range(9)
    ]
    s = _strategy(9, {"name": "krum", "params": {"num_malicious": 2}})
    agg = _aggregate(s, g, states, [100] * 9)
    weights = s.round_log[1].weights
    assert weights is not None and sorted(weights.values()) == [0.0] * 8 + [1.0]
    assert max(weights, key=weights.get) == _nearest(agg, states)


def test_bulyan_logs_no_decision_for_a_round_flower_did_not_aggregate():
    """f = 1 needs 4f + 3 = 7 replies; one of the 7 is rejected by the screen, so Flower skips the round."""
    g, states = _krum_states()
    states = states[:7]
    states[6] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in states[6].items()}
    s = _strategy(7, {"name": "bulyan", "params": {"num_malicious": 1}})
    msgs = list(s.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    replies = [
        Message(RecordDict({"arrays": ArrayRecord(dict(st)), "metrics": MetricRecord({"num-examples": 100})}), reply_to=m)
        for m, st in zip(msgs, states)
    ]
    arrays, _ = s.aggregate_train(1, replies)
    log = s.round_log[1]
    assert arrays is None and list(log.rejected) == [6]
    assert log.weights is None  # only the screen decided this round
