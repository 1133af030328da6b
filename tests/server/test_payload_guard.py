"""Hostile payloads against every strategy: rejected or neutralised, and the global model stays
finite. Runs the real strategy classes (controlled sampling + guard + Flower's aggregation) on
real reply messages, without Ray."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fl_sim.clients.hostile import PayloadKind, corrupt
from fl_sim.components import STRATEGIES as _REGISTRY  # noqa: E402
from fl_sim.models import build_model
from fl_sim.server.payload_guard import GuardLimits, screen
from tests.conftest import make_strategy, scenario_of, tiny_raw

pytestmark = pytest.mark.usefixtures("task_identity")

STRATEGIES = _REGISTRY.names()  # every registered aggregation rule and defense
N = 8  # bulyan needs n >= 4f + 3 = 7 with f = 1, after one rejection too


def _states():
    torch.manual_seed(0)
    g = build_model("mnist_cnn", 10, (1, 28, 28)).state_dict()
    gen = torch.Generator().manual_seed(1)
    clients = [{k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in g.items()} for _ in range(N)]
    return g, clients


def _replies(strategy, g, states, counts):
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    out = []
    for m, s, n in zip(msgs, states, counts):
        content = RecordDict({"arrays": ArrayRecord({k: v for k, v in s.items()}), "metrics": MetricRecord({"num-examples": n})})
        out.append(Message(content, reply_to=m))
    return out


@pytest.mark.parametrize("kind", list(PayloadKind))
def test_screen_rejects_or_caps_each_kind(kind):
    g, clients = _states()
    bad, n_bad = corrupt(clients[0], g, 100, kind)
    reasons, counts = screen(g, [bad] + clients[1:], [n_bad] + [100] * (N - 1), GuardLimits())
    if kind is PayloadKind.LYING_COUNT:
        assert reasons[0] is None and counts[0] == 1000.0
    else:
        assert reasons[0] is not None
    assert all(r is None for r in reasons[1:])


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("kind", list(PayloadKind))
def test_global_model_stays_finite(name, kind):
    s = scenario_of(
        tiny_raw(federation={"num_clients": N, "rounds": 1}, attack={"num_malicious": 1}, strategy={"name": name}), "t"
    )
    strategy = make_strategy(s, node_of={p: 1000 + p for p in range(N)})
    g, clients = _states()
    bad, n_bad = corrupt(clients[0], g, 100, kind)
    replies = _replies(strategy, g, [bad] + clients[1:], [n_bad] + [100] * (N - 1))
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    agg = arrays.to_torch_state_dict()
    assert set(agg) == set(g) and all(torch.isfinite(v).all() and v.shape == g[k].shape for k, v in agg.items())
    log = strategy.round_log[1]
    if kind is PayloadKind.LYING_COUNT:
        assert log.capped == {0: [100000.0, 1000.0]}
    else:
        assert list(log.rejected) == [0]


def test_update_norm_and_one_pass_inspection():
    from fl_sim.server.payload_guard import inspect_states, update_norm

    gen = torch.Generator().manual_seed(0)
    ref = {"w": torch.randn(5, 3, generator=gen), "b": torch.randn(3, generator=gen), "n": torch.tensor([4])}
    s = {k: (v + torch.randn(v.shape, generator=gen) if v.is_floating_point() else v + 2) for k, v in ref.items()}
    exact = torch.sqrt(sum(((s[k].double() - ref[k].double()) ** 2).sum() for k in ref))
    assert update_norm(ref, s) == pytest.approx(float(exact), rel=1e-6)  # the difference is taken in float32
    inf = {**s, "b": torch.tensor([0.0, float("inf"), 1.0])}
    wrong = {**s, "w": torch.zeros(3, 5)}
    problems, norms = inspect_states(ref, [s, inf, wrong, None])
    assert problems == [
        None,
        "array 'b' holds NaN or Inf",
        "array 'w' has shape (3, 5), expected (5, 3)",
        "arrays could not be decoded",
    ]
    assert norms[0] == pytest.approx(float(exact)) and norms[1:] == [None, None, None]
