"""Collusion maths against hand-computed cases."""

import torch

from fl_sim.clients.collusion import aggregation_aware_submission, boost
from fl_sim.server.plain_loop import fedavg


def test_aggregation_aware_submission_moves_fedavg_onto_target():
    h = {"w": torch.tensor([1.0, 2.0])}
    target = {"w": torch.tensor([1.5, 1.0])}
    n, k = 5, 2
    sub = aggregation_aware_submission(h, target, n, k)
    assert torch.allclose(sub["w"], torch.tensor([1.0 + 2.5 * 0.5, 2.0 + 2.5 * -1.0]))
    agg = fedavg([h] * (n - k) + [sub] * k, [1] * n)
    assert torch.allclose(agg["w"], target["w"])


def test_boost_scales_update_exactly():
    g = {"w": torch.tensor([1.0, -1.0])}
    s = {"w": torch.tensor([2.0, 0.0])}
    assert torch.equal(boost(g, s, 3.0)["w"], torch.tensor([4.0, 2.0]))
    assert torch.equal(boost(g, s, 1.0)["w"], s["w"])


def test_state_distance_and_projection_onto_a_ball():
    from fl_sim.clients.collusion import project_into_ball, state_distance

    center = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0])}
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    model.b = torch.nn.Parameter(torch.tensor([1.0]))
    assert state_distance(dict(model.state_dict()), center) == 5.0
    project_into_ball(model, center, 2.5)
    assert torch.allclose(model.w.detach(), torch.tensor([1.5, 2.0])) and model.b.item() == 1.0
    project_into_ball(model, center, 10.0)  # inside: unchanged
    assert torch.allclose(model.w.detach(), torch.tensor([1.5, 2.0]))
