"""Routing clients to Flower nodes: one node per client when all train, else one per cohort slot."""

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
    with pytest.raises(RuntimeError, match="cohort of 3 clients but only 2 nodes"):
        r.assign([1, 2, 3])


def test_execution_nodes():
    full = scenario_of(tiny_raw(federation={"num_clients": 6}), "t")
    sampled = scenario_of(tiny_raw(federation={"num_clients": 1000, "fraction_train": 0.1}), "t")
    assert execution_nodes(full) == 6 and execution_nodes(sampled) == 100
