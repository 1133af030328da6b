"""NNM, Bucketing and ARC on hand-made inputs, their chaining and client attribution, and the
strategy spec ("nnm+krum") wired into the real Flower strategy (a Flower rule and a tensor rule)."""

import re

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fl_sim.preaggregators import attribute, chain
from fl_sim.rule_replicas import simulate, split_spec
from fl_sim.server.updates import flatten_update, float_keys, unflatten_update
from strategies.arc import ARCStep, arc, arc_clipped, arc_factors
from strategies.bucketing import BucketingParams, BucketingStep, bucket_mixing, bucketing
from strategies.nnm import NNMStep, nnm
from tests.conftest import make_strategy, scenario_of, tiny_raw

X1 = torch.tensor([[0.0], [1.0], [2.0], [10.0]])


def test_nnm_by_hand():
    # f = 1: each point averages its 3 nearest (itself included). 0, 1, 2 -> {0, 1, 2}; 10 -> {10, 2, 1}.
    mixed = nnm(X1, torch.ones(4), 1)
    assert mixed.updates.flatten().tolist() == pytest.approx([1.0, 1.0, 1.0, 13 / 3])
    assert mixed.mixing.tolist()[3] == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])
    assert mixed.weights.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_nnm_with_f_zero_averages_everything():
    mixed = nnm(X1, torch.ones(4), 0)
    assert mixed.updates.flatten().tolist() == pytest.approx([3.25] * 4)


def test_bucketing_by_hand():
    mixing = bucket_mixing(5, 2, torch.tensor([4, 0, 3, 1, 2]))
    assert mixing.tolist() == [[0.5, 0, 0, 0, 0.5], [0, 0.5, 0, 0.5, 0], [0, 0, 1.0, 0, 0]]
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    counts = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    mixed = bucketing(x, counts, 2, g1)
    perm = torch.randperm(5, generator=g2)
    buckets = [perm[0:2], perm[2:4], perm[4:5]]
    assert mixed.updates.flatten().tolist() == pytest.approx([float(x[b].mean()) for b in buckets])
    assert mixed.weights.tolist() == pytest.approx([float(counts[b].sum()) for b in buckets])
    assert BucketingStep.outputs(BucketingParams(s=3), 10) == 4


def test_arc_by_hand():
    assert [arc_clipped(10, f) for f in (0, 1, 3)] == [0, 1, 4]  # floor(2 f (n - f) / n)
    x = torch.tensor([[float(v)] for v in [3, -1, 10, 2, 5, -8, 4, 9, 6, 7]])  # norms 1..10 in shuffled order
    factors = arc_factors(x, 3)  # k = 4: the norms 7, 8, 9, 10 go down to 6 (the 6th smallest)
    clipped = (factors * x.flatten()).tolist()
    assert clipped == pytest.approx([3, -1, 6, 2, 5, -6, 4, 6, 6, 6])
    assert arc(x, torch.ones(10), 0).updates.flatten().tolist() == x.flatten().tolist()


def test_chain_and_attribution():
    steps = [NNMStep(NNMStep.Params(), 1), ARCStep(ARCStep.Params(), 1)]
    mixed = chain(steps, X1, torch.ones(4), torch.Generator())
    assert torch.allclose(mixed.mixing @ X1.double(), mixed.updates.double())
    # the rule keeps only output 3, which mixes inputs 1, 2, 3: input 0 counted for nothing
    w = attribute(torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), mixed.mixing)
    assert w[0] == 0 and w.sum() == pytest.approx(1.0) and w[1:].tolist() == pytest.approx([1 / 3] * 3)


def test_spec_and_replicas():
    assert split_spec("nnm+bucketing+krum") == (["nnm", "bucketing"], "krum")
    with pytest.raises(ValueError, match="not a rule spec"):
        split_spec("nnm++krum")
    x = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator()
    assert torch.allclose(simulate("fedmedian", x, 2, g), x.median(0).values)
    mixed = nnm(x, torch.ones(9), 2).updates
    assert torch.allclose(simulate("nnm+fedmedian", x, 2, g), mixed.median(0).values)


def test_strategy_spec_in_the_schema():
    s = scenario_of(tiny_raw(strategy={"name": "nnm+bucketing+krum"}), "t")
    assert s.strategy.name == "krum" and [p.name for p in s.strategy.pre] == ["nnm", "bucketing"]
    assert s.strategy.spec == "nnm+bucketing+krum"
    s = scenario_of(tiny_raw(strategy={"name": "fedmedian", "pre": ["arc", {"name": "bucketing", "params": {"s": 3}}]}), "t")
    assert s.strategy.spec == "arc+bucketing+fedmedian" and s.strategy.pre[1].params == {"s": 3}


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"name": "nnm+krum", "pre": ["arc"]}, "names pre-aggregators and so does 'pre'"),
        ({"name": "foo+krum"}, "strategy.pre[0].name: unknown pre-aggregator 'foo'"),
        ({"name": "fedavg", "pre": [{"name": "bucketing", "params": {"size": 2}}]}, "unknown key 'strategy.pre[0].params.size'"),
        ({"name": "bucketing+krum", "params": {"num_malicious": 1}}, None),
        (
            {"name": "fedavg", "pre": [{"name": "nnm", "params": {"num_malicious": 9}}]},
            "strategy.pre[0] ('nnm'): needs fewer attackers than the 4 updates of a round, got f=9",
        ),
        ({"name": "meamed", "params": {"num_malicious": 4}}, "strategy 'meamed': needs fewer attackers than the 4 updates"),
    ],
)
def test_bad_pre_steps_are_one_line_errors(strategy, message):
    from fl_sim.errors import UserError

    raw = tiny_raw(federation={"num_clients": 4, "rounds": 1}, strategy=strategy)
    if message is None:
        scenario_of(raw, "t")
        return
    with pytest.raises(UserError, match=re.escape(message)):
        scenario_of(raw, "t")


N = 9


def _reference():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _round(strategy_section: dict, x: torch.Tensor):
    s = scenario_of(
        tiny_raw(
            federation={"num_clients": N, "rounds": 1},
            attack={"num_malicious": 2},
            strategy=strategy_section,
            evaluation={"device": "cpu"},
        ),
        "t",
    )
    strategy = make_strategy(s, node_of={p: 1000 + p for p in range(N)})
    g = _reference()
    keys = float_keys(g)
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    replies = [
        Message(
            RecordDict({"arrays": ArrayRecord(unflatten_update(u, g, keys)), "metrics": MetricRecord({"num-examples": 100})}),
            reply_to=m,
        )
        for m, u in zip(msgs, x)
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    return flatten_update(arrays.to_torch_state_dict(), g, keys), strategy.round_log[1]


def _updates(d: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    x = 0.01 * torch.randn(N, d, generator=gen)
    x[[0, 5]] = 1.0  # two far, identical updates
    return x


@pytest.mark.usefixtures("task_identity", "one_thread")
@pytest.mark.parametrize("spec", ["nnm+fedmedian", "nnm+krum", "arc+centered_clipping", "nnm+meamed", "bucketing+fedavg"])
def test_the_server_aggregates_what_the_replica_computes(spec):
    d = sum(v.numel() for v in _reference().values())
    x = _updates(d)
    agg, _ = _round({"name": spec}, x)
    if spec.startswith("bucketing"):  # the server's permutation comes from its own stream: FedAvg of buckets is the mean
        assert torch.allclose(agg, x.mean(0), atol=1e-6)
        return
    expected = simulate(spec, x.double(), 2, torch.Generator()).float()
    # centered clipping: in round 1 the server's centre is 0 and tau the median norm, as in the replica
    assert torch.allclose(agg, expected, atol=1e-6)


@pytest.mark.usefixtures("task_identity", "one_thread")
@pytest.mark.parametrize(
    "strategy", [{"name": "norm_clipping"}, {"name": "rfa"}, {"name": "flame", "params": {"noise_lambda": 0.0}}]
)
def test_the_server_aggregates_what_the_tensor_rule_replicas_compute(strategy):
    d = sum(v.numel() for v in _reference().values())
    x = _updates(d)
    agg, _ = _round(strategy, x)
    expected = simulate(strategy["name"], x.double(), 2, torch.Generator()).float()
    assert torch.allclose(agg, expected, atol=1e-5)
    assert float((agg - x.mean(0)).norm()) > 1e-3  # the far pair moves the plain mean: the rule is not the mean


@pytest.mark.usefixtures("task_identity", "one_thread")
def test_nnm_then_krum_gives_the_far_updates_no_weight():
    d = sum(v.numel() for v in _reference().values())
    agg, log = _round({"name": "nnm+krum"}, _updates(d))
    assert log.weights[0] == 0 and log.weights[5] == 0
    assert float(agg.norm()) < 0.1


@pytest.mark.usefixtures("task_identity", "one_thread")
def test_bucketing_feeds_the_rule_bucket_means():
    d = sum(v.numel() for v in _reference().values())
    x = _updates(d)
    agg, log = _round({"name": "fedavg", "pre": [{"name": "bucketing", "params": {"s": 3}}]}, x)
    # FedAvg of the 3 bucket means with their summed counts is the plain mean, whatever the permutation
    assert torch.allclose(agg, x.mean(0), atol=1e-6)
    assert log.weights == pytest.approx({p: 1 / N for p in range(N)})
