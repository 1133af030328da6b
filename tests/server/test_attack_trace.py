"""The colluders' target travels only to the harness: stripped from every reply before the adversary
and the strategy see it, and turned into the aggregate's integer hit rate."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fl_sim.models import build_model
from fl_sim.server.attack_trace import ATTACK_TARGET, hit_rates, strip_targets
from tests.conftest import make_strategy, scenario_of, tiny_raw, wired

pytestmark = pytest.mark.usefixtures("task_identity")


def test_strip_removes_the_record_and_returns_the_targets():
    s = scenario_of(tiny_raw(), "t")
    g = build_model("mnist_cnn", 10, (1, 28, 28)).state_dict()
    strategy = make_strategy(s, {i: 100 + i for i in range(4)})
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    target = {k: v + 1.0 for k, v in g.items()}
    replies = []
    for i, m in enumerate(msgs):
        content = {"arrays": ArrayRecord(g), "metrics": MetricRecord({"num-examples": 10})}
        if i == 0:
            content[ATTACK_TARGET] = ArrayRecord(target)
        replies.append(Message(RecordDict(content), reply_to=m))
    got = strip_targets(replies)
    assert len(got) == 1 and all(torch.equal(got[0][k], target[k]) for k in g)
    assert all(ATTACK_TARGET not in r.content for r in replies)
    assert all(set(r.content) == {"arrays", "metrics"} for r in replies)


def test_hit_rates_per_attacked_bit_width():
    s = scenario_of(tiny_raw(attack={"params": {"bits": [8, 4]}}), "t")
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    state = model.state_dict()
    rates = hit_rates(state, [state], wired(s).clients.attack.params, model)
    assert rates == {"int8": 1.0, "int4": 1.0}
    assert hit_rates(state, [], wired(s).clients.attack.params, model) is None
