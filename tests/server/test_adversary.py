"""The server-side adversary's maths (``rewrite_updates``) against hand-computed and reference
results: what each collusion model knows, ALIE's z from scipy, exact steering of the example-weighted
FedAvg, the stealth bounds, and the flat-update round trip."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from fl_sim.clients.collusion import stealth_bound, steer_aggregate
from fl_sim.components import BEHAVIOURS
from fl_sim.config.schema import Collusion
from fl_sim.models import build_model
from fl_sim.server.adversary import Reply, flatten_update, float_keys, needs_adversary, rewrite_updates, unflatten_update
from tests.conftest import scenario_of, tiny_raw, wired

OMNI, AWARE, INDEP = Collusion.OMNISCIENT, Collusion.AGGREGATION_AWARE, Collusion.INDEPENDENT


def _scenario(behaviour: str = "sign_flip", collusion: str = "omniscient", params: dict | None = None, **attack):
    raw = tiny_raw(attack={"behaviour": behaviour, "collusion": collusion, "num_malicious": 1, "params": params or {}, **attack})
    return scenario_of(raw, "t")


def _scenario_and_plan(raw: dict):
    s = scenario_of(raw, "t")
    return s, wired(s).clients.attack


def _behaviour(name: str, **params):
    cls = BEHAVIOURS.get(name)
    return cls(cls.Params(**params))


def _replies():
    g = torch.Generator().manual_seed(0)
    honest = [Reply(i, torch.randn(5, generator=g), c) for i, c in enumerate([10.0, 30.0, 20.0, 40.0])]
    colluders = [Reply(10 + i, torch.randn(5, generator=g), c) for i, c in enumerate([5.0, 15.0])]
    return honest, colluders


def _stack(rs):
    return torch.stack([r.update for r in rs])


# ---- crafted attacks: what the colluders know


def test_sign_flip_uses_the_known_updates_of_each_collusion_model():
    honest, colluders = _replies()
    b = _behaviour("sign_flip")
    s = _scenario()
    omni = rewrite_updates(b, OMNI, honest, colluders, s, 1)
    assert all(torch.allclose(u, -_stack(honest).mean(0), atol=1e-6) for u in omni)
    aware = rewrite_updates(b, AWARE, honest, colluders, s, 1)
    assert all(torch.allclose(u, -_stack(colluders).mean(0), atol=1e-6) for u in aware)
    indep = rewrite_updates(b, INDEP, honest, colluders, s, 1)
    assert len(indep) == 2 and all(torch.allclose(u, -c.update, atol=1e-6) for u, c in zip(indep, colluders))


def test_sign_flip_scale_param():
    honest, colluders = _replies()
    out = rewrite_updates(_behaviour("sign_flip", scale=3.0), OMNI, honest, colluders, _scenario(params={"scale": 3.0}), 1)
    assert torch.allclose(out[0], -3.0 * _stack(honest).mean(0), atol=1e-6)


def test_alie_omniscient_matches_mean_minus_z_std_with_scipy_z():
    g = torch.Generator().manual_seed(3)
    honest = [Reply(i, torch.randn(4, generator=g), 1.0) for i in range(4)]
    colluders = [Reply(9, torch.randn(4, generator=g), 1.0)]
    # n = 5 replies, f = 1 colluder: s = floor(5/2 + 1) - 1 = 2, z = Phi^-1((5 - 2) / 5).
    z = norm.ppf(3 / 5)
    h = _stack(honest).double().numpy()
    want = h.mean(0) - z * h.std(0, ddof=1)
    (got,) = rewrite_updates(_behaviour("alie"), OMNI, honest, colluders, _scenario("alie"), 1)
    assert np.allclose(got.double().numpy(), want, atol=1e-5)


def test_alie_z_for_a_larger_cohort():
    from fl_sim.clients.model_poisoning import alie_z

    # n = 10, f = 3: s = floor(6) - 3 = 3, z = Phi^-1(7/10).
    assert alie_z(10, 3) == pytest.approx(norm.ppf(0.7), abs=1e-9)
    assert alie_z(5, 1) == pytest.approx(norm.ppf(0.6), abs=1e-9)


# ---- non-crafted attacks: the colluders' model as the FedAvg target


def test_omniscient_steering_makes_weighted_fedavg_equal_the_colluders_mean():
    honest, colluders = _replies()
    s = _scenario("qat_backdoor", params={"bits": [8]})
    out = rewrite_updates(_behaviour("qat_backdoor"), OMNI, honest, colluders, s, 1)
    target = _stack(colluders).mean(0)
    num = sum(r.count * r.update for r in honest) + sum(c.count * u for c, u in zip(colluders, out))
    den = sum(r.count for r in honest) + sum(c.count for c in colluders)
    assert torch.allclose(num / den, target, atol=1e-5)
    assert torch.allclose(out[0], out[1])  # all colluders submit the same steered update
    assert not torch.allclose(out[0], target, atol=1e-3)  # ... which is not the target itself


@pytest.mark.parametrize("collusion", [INDEP, AWARE])
def test_non_crafted_attack_without_omniscience_is_left_unchanged(collusion):
    honest, colluders = _replies()
    s = _scenario("qat_backdoor", collusion.value, params={"bits": [8]})
    out = rewrite_updates(_behaviour("qat_backdoor"), collusion, honest, colluders, s, 1)
    assert all(torch.equal(u, c.update) for u, c in zip(out, colluders))


def test_omniscient_steering_without_honest_replies_submits_the_target():
    _, colluders = _replies()
    s = _scenario("qat_backdoor", params={"bits": [8]})
    out = rewrite_updates(_behaviour("qat_backdoor"), OMNI, [], colluders, s, 1)
    assert all(torch.allclose(u, _stack(colluders).mean(0), atol=1e-6) for u in out)


# ---- stealth


def _norm_replies():
    honest = [
        Reply(0, torch.tensor([3.0, 4.0, 0.0]), 1.0),
        Reply(1, torch.tensor([0.0, 1.0, 0.0]), 1.0),
        Reply(2, torch.tensor([6.0, 8.0, 0.0]), 1.0),
    ]  # norms 5, 1, 10: median 5
    colluders = [Reply(5, torch.tensor([1.0, 0.0, 2.0]), 1.0)]
    return honest, colluders


def test_stealth_norm_ratio_bounds_a_crafted_update():
    honest, colluders = _norm_replies()
    s = _scenario(params={"scale": 10.0}, stealth={"max_norm_ratio": 1.5})
    (u,) = rewrite_updates(_behaviour("sign_flip", scale=10.0), OMNI, honest, colluders, s, 1)
    raw = -10.0 * _stack(honest).mean(0)  # norm 10 * 25/3 > 7.5: clipped along its own direction
    assert u.norm() == pytest.approx(1.5 * 5.0, rel=1e-5)
    assert torch.allclose(u, raw * (7.5 / raw.norm()), atol=1e-5)


def test_stealth_norm_ratio_bounds_a_steered_update():
    honest, colluders = _norm_replies()
    colluders = [Reply(5, torch.tensor([100.0, -50.0, 20.0]), 3.0)]
    s = _scenario("qat_backdoor", params={"bits": [8]}, stealth={"max_norm_ratio": 1.5})
    (u,) = rewrite_updates(_behaviour("qat_backdoor"), OMNI, honest, colluders, s, 1)
    assert float(u.norm()) <= 1.5 * 5.0 + 1e-4
    free = _scenario("qat_backdoor", params={"bits": [8]})
    (unbounded,) = rewrite_updates(_behaviour("qat_backdoor"), OMNI, honest, colluders, free, 1)
    assert float(unbounded.norm()) > 1.5 * 5.0  # the bound was active


def test_stealth_distance_ratio_keeps_the_update_among_the_honest():
    honest, colluders = _norm_replies()
    s = _scenario(params={"scale": 5.0}, stealth={"max_distance_ratio": 1.0})
    (u,) = rewrite_updates(_behaviour("sign_flip", scale=5.0), OMNI, honest, colluders, s, 1)
    h = _stack(honest)
    mean = h.mean(0)
    radius = float((h - mean).norm(dim=1).max())
    assert float((u - mean).norm()) == pytest.approx(radius, rel=1e-5)  # it was outside: projected onto the sphere


def test_stealth_bound_hand_computed():
    known = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])  # median norm 5
    assert torch.allclose(stealth_bound(torch.tensor([30.0, 40.0]), known, 2.0, None), torch.tensor([6.0, 8.0]))
    assert torch.equal(stealth_bound(torch.tensor([3.0, 0.0]), known, 2.0, None), torch.tensor([3.0, 0.0]))  # inside
    ring = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])  # mean 0, largest distance 1
    assert torch.allclose(stealth_bound(torch.tensor([4.0, 3.0]), ring, None, 2.0), torch.tensor([1.6, 1.2]))
    u = torch.tensor([-7.0, 2.5])
    assert torch.equal(stealth_bound(u, known, None, None), u)


# ---- steering maths


def test_steer_aggregate_hand_computed_1d():
    benign = torch.tensor([[1.0], [3.0]])
    # (1*1 + 3*3 + 2 s) / 6 = 2  <=>  s = 1
    s = steer_aggregate(benign, torch.tensor([1.0, 3.0]), 2.0, torch.tensor([2.0]))
    assert torch.allclose(s, torch.tensor([1.0]))
    # (1*1 + 3*3 + 4 s) / 8 = -1  <=>  s = -4.5
    assert torch.allclose(steer_aggregate(benign, torch.tensor([1.0, 3.0]), 4.0, torch.tensor([-1.0])), torch.tensor([-4.5]))
    assert torch.allclose(steer_aggregate(benign[:0], torch.tensor([]), 2.0, torch.tensor([0.7])), torch.tensor([0.7]))
    with pytest.raises(ValueError, match="colluder_weight"):
        steer_aggregate(benign, torch.tensor([1.0, 3.0]), 0.0, torch.tensor([2.0]))


# ---- flat updates


def test_flatten_unflatten_round_trip_leaves_non_float_buffers_alone():
    torch.manual_seed(0)
    ref = dict(build_model("mnist_cnn", 10, (1, 28, 28)).state_dict())
    ref["steps"] = torch.tensor(4, dtype=torch.int64)
    g = torch.Generator().manual_seed(1)
    state = {k: (v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v + 3) for k, v in ref.items()}
    keys = float_keys(ref)
    assert "steps" not in keys and len(keys) == 8
    vec = flatten_update(state, ref, keys)
    assert vec.dim() == 1 and vec.numel() == sum(ref[k].numel() for k in keys) and vec.dtype == torch.float32
    at = 0
    for k in keys:  # the layout is the keys' order, each tensor flattened row-major
        n = ref[k].numel()
        assert torch.allclose(vec[at : at + n], (state[k] - ref[k]).reshape(-1))
        at += n
    back = unflatten_update(vec, ref, keys)
    assert back.keys() == ref.keys()
    assert all(torch.allclose(back[k], state[k], atol=1e-7) and back[k].dtype == ref[k].dtype for k in keys)
    assert back["steps"].dtype == torch.int64 and back["steps"].item() == 4  # the reference's, not the state's 7
    assert back["steps"] is not ref["steps"]


# ---- when the adversary is needed


@pytest.mark.parametrize(
    "attack,needed",
    [
        ({"num_malicious": 0}, False),
        ({"behaviour": "qat_backdoor", "collusion": "independent"}, False),
        ({"behaviour": "qat_backdoor", "collusion": "aggregation_aware"}, False),
        ({"behaviour": "alie", "collusion": "independent", "params": {}}, True),
        ({"behaviour": "alie", "collusion": "aggregation_aware", "params": {}}, True),
        ({"behaviour": "alie", "collusion": "omniscient", "params": {}}, True),
        ({"behaviour": "qat_backdoor", "collusion": "omniscient"}, True),
        ({"behaviour": "qat_backdoor", "collusion": "omniscient", "stealth": {"max_norm_ratio": 2.0}}, True),
        ({"behaviour": "sign_flip", "collusion": "independent", "params": {}, "stealth": {"max_norm_ratio": 1.0}}, True),
    ],
)
def test_needs_adversary(attack, needed):
    assert needs_adversary(*_scenario_and_plan(tiny_raw(attack=attack))) is needed


def test_rewrite_does_not_depend_on_reply_arrival_order():
    """Gaussian draws come from one shared generator: colluders are served in partition order."""
    from fl_sim.server.adversary import Adversary

    s = scenario_of(
        tiny_raw(
            federation={"num_clients": 6},
            attack={"behaviour": "gaussian_noise", "num_malicious": 3, "collusion": "aggregation_aware", "params": {}},
        ),
        "t",
    )
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    replies = [(pid, {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in ref.items()}, 100.0) for pid in range(6)]
    adv = Adversary(s, wired(s).clients.attack, lambda m: m.metadata.src_node_id)
    a = adv.rewrite_states(1, replies, ref)
    b = adv.rewrite_states(1, list(reversed(replies)), ref)
    assert sorted(a) == sorted(b) == sorted(adv.bad)
    assert all(torch.equal(a[p][k], b[p][k]) for p in a for k in ref)


def test_alie_z_is_capped_where_the_formula_is_undefined():
    from statistics import NormalDist

    from fl_sim.clients.crafted import alie_z_for

    assert alie_z_for(50, 12) == pytest.approx(norm.ppf(0.72))
    assert alie_z_for(3, 2) == pytest.approx(NormalDist().inv_cdf(0.99))  # colluders are the majority
    assert alie_z_for(2, 2) == pytest.approx(NormalDist().inv_cdf(0.99))  # colluders alone


def test_colluders_train_as_the_scenario_s_honest_clients_do():
    from fl_sim.clients.honest import HonestQAT, honest_for

    s = scenario_of(tiny_raw(training={"qat": {"enabled": True, "bits": 8}}), "t")
    assert isinstance(honest_for(s), HonestQAT)
    assert type(honest_for(scenario_of(tiny_raw(), "t"))).__name__ == "Honest"
