"""Coordinated colluders of a round submit one identical update: the first computes it, the others
find it in the client process's ``SubmissionMemo`` (owned by the ClientApp, not module state)."""

import torch

from fl_sim.clients.registry import SubmissionMemo
from fl_sim.clients.runtime import run_client
from fl_sim.data.federated import federated_data
from fl_sim.server.loop import initial_model
from tests.conftest import tiny_raw, wired

CPU = torch.device("cpu")


def _setup():
    raw = tiny_raw(
        federation={"num_clients": 4, "rounds": 1},
        attack={"behaviour": "fp_backdoor", "num_malicious": 2, "collusion": "aggregation_aware", "params": {}},
    )
    w = wired(raw)
    s = w.scenario
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    start = {k: v.clone() for k, v in initial_model(s, data).state_dict().items()}
    return w, data, start, list(range(s.federation.num_clients))


def test_the_second_colluder_reuses_the_first_ones_submission():
    w, data, start, cohort = _setup()
    a, b = w.malicious
    memo = SubmissionMemo()
    first = run_client(w.clients, data, a, 1, start, cohort, CPU, memo)
    second = run_client(w.clients, data, b, 1, start, cohort, CPU, memo)
    assert memo.hits == 1
    alone = run_client(w.clients, data, b, 1, start, cohort, CPU, SubmissionMemo())  # computed afresh
    for k in start:
        assert torch.equal(second.state[k], alone.state[k]) and torch.equal(first.state[k], alone.state[k])


def test_the_memo_misses_when_anything_the_submission_depends_on_changes():
    w, data, start, cohort = _setup()
    a, b = w.malicious
    memo = SubmissionMemo()
    run_client(w.clients, data, a, 1, start, cohort, CPU, memo)
    moved = {k: v + 1e-3 if v.is_floating_point() else v for k, v in start.items()}  # another global model
    run_client(w.clients, data, b, 1, moved, cohort, CPU, memo)
    run_client(w.clients, data, b, 2, moved, cohort, CPU, memo)  # another round
    assert memo.hits == 0


def test_honest_clients_never_touch_the_memo():
    w, data, start, cohort = _setup()
    honest = next(p for p in cohort if p not in w.malicious)
    memo = SubmissionMemo()
    run_client(w.clients, data, honest, 1, start, cohort, CPU, memo)
    assert memo.key is None and memo.hits == 0
