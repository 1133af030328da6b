"""Every defense implemented as a tensor rule, driven through the real strategy object
(build_strategy -> configure_train -> aggregate_train on reply messages, no Ray): 8 clients of which
2 send a large update along one direction. The aggregate is a finite model, the round log holds the
rule's per-client decisions, and each defense does what its paper says to the large updates."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fl_sim.models import build_model
from fl_sim.server.aggregation import RoundInput
from fl_sim.server.updates import flatten_update, float_keys, unflatten_update
from tests.conftest import knowledge_for, make_strategy, scenario_of, tiny_raw

pytestmark = pytest.mark.usefixtures("task_identity", "one_thread")

N = 8
BAD = (2, 5)  # the two clients sending the large update
HONEST = [p for p in range(N) if p not in BAD]
TENSOR_STRATEGIES = ["norm_clipping", "fltrust", "flame", "foolsgold", "rfa", "centered_clipping", "dnc", "quant_aware"]
NEEDS_MODEL = {"fltrust", "quant_aware"}  # these build the scenario's model (mnist_cnn on 28x28 digits)


def _scenario(name: str, params: dict | None = None):
    return scenario_of(
        tiny_raw(
            federation={"num_clients": N, "rounds": 2},
            attack={"num_malicious": len(BAD)},
            strategy={"name": name, "params": params or {}},
            evaluation={"device": "cpu"},
        ),
        "t",
    )


def _strategy(name: str, params: dict | None = None):
    return make_strategy(_scenario(name, params), node_of={p: 1000 + p for p in range(N)})


def _reference(name: str) -> dict[str, torch.Tensor]:
    """The scenario's model for the rules that build it; a small state otherwise (faster, same maths)."""
    torch.manual_seed(0)
    if name in NEEDS_MODEL:
        return build_model("mnist_cnn", 10, (1, 28, 28)).state_dict()
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _updates(d: int, seed: int = 1) -> torch.Tensor:
    """(N, d) updates: honest ones share a direction mu plus noise; the two bad ones are the same
    vector, 50x the honest norm along a random direction."""
    gen = torch.Generator().manual_seed(seed)
    mu = 0.01 * torch.randn(d, generator=gen)
    x = mu + 0.005 * torch.randn(N, d, generator=gen)
    direction = torch.randn(d, generator=gen)
    big = 50 * x[HONEST].norm(dim=1).median() * direction / direction.norm()
    x[list(BAD)] = big
    return x


def _run(strategy, g, updates, counts=None, server_round: int = 1):
    """One round: returns (aggregate state, flat aggregate update, the round's log)."""
    keys = float_keys(g)
    counts = counts or [100 + 10 * p for p in range(N)]
    msgs = list(strategy.configure_train(server_round, ArrayRecord(g), ConfigRecord(), None))
    replies = [
        Message(
            RecordDict({"arrays": ArrayRecord(unflatten_update(u, g, keys)), "metrics": MetricRecord({"num-examples": c})}),
            reply_to=m,
        )
        for m, u, c in zip(msgs, updates, counts)
    ]
    replies.reverse()  # arrival order must not matter
    arrays, metrics = strategy.aggregate_train(server_round, replies)
    agg = arrays.to_torch_state_dict()
    log = strategy.round_log[server_round]
    assert metrics["kept"] == sum(w > 0 for w in log.weights.values())
    return agg, flatten_update(agg, g, keys), log


def _check_contract(g, agg, log):
    assert set(agg) == set(g)
    assert all(v.shape == g[k].shape and v.dtype == g[k].dtype and torch.isfinite(v).all() for k, v in agg.items())
    assert log.rejected == {}  # 50x the median is inside the reply screen's 100x: the rule decides
    w = log.weights
    assert sorted(w) == list(range(N)) and all(v >= 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-9) or all(v == 0 for v in w.values())


@pytest.mark.parametrize("name", TENSOR_STRATEGIES)
def test_aggregate_is_a_finite_model_and_weights_are_logged(name):
    g = _reference(name)
    x = _updates(sum(v.numel() for v in g.values()))
    agg, _, log = _run(_strategy(name), g, x)
    _check_contract(g, agg, log)


def _error(agg: torch.Tensor, x: torch.Tensor) -> float:
    return float((agg.double() - x[HONEST].double().mean(0)).norm())


@pytest.mark.parametrize("name", ["rfa", "centered_clipping", "dnc", "flame", "quant_aware"])
def test_robust_rules_stay_near_the_honest_mean(name):
    g = _reference(name)
    x = _updates(sum(v.numel() for v in g.values()))
    _, agg, log = _run(_strategy(name), g, x)
    plain = _error(x.mean(0), x)
    assert plain > 5 * float(x[HONEST].norm(dim=1).median())  # the attack moves the plain mean a lot
    assert _error(agg, x) < 0.1 * plain
    if name in ("dnc", "flame", "quant_aware"):  # these reject: exactly the large ones
        assert [p for p, w in log.weights.items() if w == 0] == list(BAD)


def test_norm_clipping_bounds_the_aggregate_by_the_median_norm():
    g = _reference("norm_clipping")
    x = _updates(sum(v.numel() for v in g.values()))
    _, agg, log = _run(_strategy("norm_clipping"), g, x)
    norms = x.double().norm(dim=1)
    bound = float(norms.median() + norms.sort().values[N // 2 - 1]) / 2  # even n: the middle pair's mean
    assert float(agg.norm()) <= bound * (1 + 1e-6)
    # The median bound clips every update above it: the two large ones and the longer half of the honest.
    assert log.clipped == [p for p in range(N) if float(norms[p]) > bound]
    assert set(BAD) <= set(log.clipped) and len(log.clipped) == N // 2
    counts = torch.tensor([100 + 10 * p for p in range(N)], dtype=torch.float64)
    assert log.weights == pytest.approx(dict(enumerate((counts / counts.sum()).tolist())))


def test_norm_clipping_with_a_fixed_bound_clips_exactly_the_large_ones():
    g = _reference("norm_clipping")
    x = _updates(sum(v.numel() for v in g.values()))
    bound = 2 * float(x[HONEST].norm(dim=1).max())
    _, agg, log = _run(_strategy("norm_clipping", {"max_norm": bound}), g, x)
    assert log.clipped == list(BAD)
    clipped = x.double().clone()
    clipped[list(BAD)] *= bound / clipped[list(BAD)].norm(dim=1, keepdim=True)
    counts = torch.tensor([100 + 10 * p for p in range(N)], dtype=torch.float64)
    assert torch.allclose(agg.double(), counts @ clipped / counts.sum(), atol=1e-6)


def test_foolsgold_history_persists_across_rounds():
    g = _reference("foolsgold")
    d = sum(v.numel() for v in g.values())
    gen = torch.Generator().manual_seed(3)
    # Round 1: the colluders send one identical update; honest clients send independent ones.
    r1 = 0.01 * torch.randn(N, d, generator=gen)
    r1[list(BAD)] = 0.05 * torch.randn(d, generator=gen)
    # Round 2: everyone sends independent small updates, so only the history can tell the colluders.
    r2 = 0.01 * torch.randn(N, d, generator=gen)
    strategy = _strategy("foolsgold")
    g2, _, log1 = _run(strategy, g, r1, server_round=1)
    _check_contract(g, g2, log1)
    _, _, log2 = _run(strategy, g2, r2, server_round=2)
    for log in (log1, log2):
        assert all(log.weights[p] < 1e-6 for p in BAD)
        assert all(log.weights[p] == pytest.approx(1 / len(HONEST)) for p in HONEST)
    # Without the round-1 history the same round-2 updates look honest.
    _, _, fresh = _run(_strategy("foolsgold"), g2, r2, server_round=2)
    assert all(fresh.weights[p] > 0.5 / N for p in BAD)


def test_fltrust_gives_no_weight_to_updates_against_the_servers_own():
    from strategies.fltrust import fltrust, server_update

    s = _scenario("fltrust")
    g = _reference("fltrust")
    keys = float_keys(g)
    d = sum(v.numel() for v in g.values())
    g0 = server_update(
        knowledge_for(s), RoundInput(1, list(range(N)), torch.zeros(N, d), torch.ones(N), g, keys), s.training.epochs
    )
    assert float(g0.norm()) > 0
    gen = torch.Generator().manual_seed(4)
    x = g0 + 0.5 * g0.norm() / d**0.5 * torch.randn(N, d, generator=gen)  # along g0, with noise
    x[list(BAD)] = -20 * g0  # large and pointing against the server's update
    strategy = make_strategy(s, node_of={p: 1000 + p for p in range(N)})
    _, agg, log = _run(strategy, g, x)
    assert [p for p, w in log.weights.items() if w == 0] == list(BAD)
    expected = fltrust(x, g0)  # the rule on the same server update: the server's training is seeded
    assert torch.allclose(agg, expected.update, atol=1e-6)
    assert list(log.weights.values()) == pytest.approx(expected.weights.tolist())
