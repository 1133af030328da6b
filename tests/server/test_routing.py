"""Routing clients to Flower nodes: one node per client when there are enough, else round-robin over the nodes."""

import pytest

from fl_sim.server.routing import Routing, execution_nodes
from tests.conftest import scenario_of, tiny_raw


def test_one_node_per_client_is_fixed():
    r = Routing({0: 10, 1: 11, 2: 12}, num_clients=3)
    assert r.assign([0, 1, 2]) == {0: 10, 1: 11, 2: 12}
    assert r.assign([2]) == {0: 10, 1: 11, 2: 12} and r.pid_of == {10: 0, 11: 1, 12: 2}


def test_slots_follow_the_cohort_and_update_shared_maps_in_place():
    r = Routing({1: 21, 0: 20}, num_clients=1000)
    pid_of = r.pid_of  # a holder's reference (e.g. the adversary's)
    assert r.assign([7, 512]) == {7: 20, 512: 21}
    assert pid_of == {20: 7, 21: 512}
    r.assign([3, 999])
    assert pid_of == {20: 3, 21: 999} and r.node_of == {3: 20, 999: 21}
    # more clients than nodes: round-robin, the shared nodes leave the node -> partition map
    assert r.assign([1, 2, 3]) == {1: 20, 2: 21, 3: 20}
    assert pid_of == {21: 2}
    with pytest.raises(RuntimeError, match="no Flower node"):
        Routing({}, num_clients=4).assign([0])


def test_replies_are_traced_through_the_message_they_answer(task_identity):
    from flwr.app import ConfigRecord, Message, RecordDict

    r = Routing({0: 20, 1: 21}, num_clients=10)
    node_of = r.assign([4, 5, 6])
    sent = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node_of[p], message_type="train") for p in (4, 5, 6)]
    r.sent(sent, [4, 5, 6])
    for i, m in enumerate(sent):  # what Flower's grid does when it pushes them
        m.metadata.__dict__["_message_id"] = f"id-{i}"
    replies = [Message(RecordDict({}), reply_to=m) for m in sent]
    assert [r.pid_for(m) for m in replies] == [4, 5, 6]  # nodes 20 and 21 ran 4 and 6, and 5
    stray = Message(RecordDict({}), reply_to=Message(RecordDict({}), dst_node_id=21, message_type="train"))
    assert r.pid_for(stray) == 5  # no message id: by node, which runs one client


def test_execution_nodes():
    full = scenario_of(tiny_raw(federation={"num_clients": 6}), "t")
    sampled = scenario_of(tiny_raw(federation={"num_clients": 1000, "fraction_train": 0.1}), "t")
    assert execution_nodes(full) == 6 and execution_nodes(sampled) == 100
