"""Malicious-QAT objectives equal their formulas (../REFERENCE §1), assembled by hand here."""

import torch
import torch.nn.functional as F

from fl_sim.clients.qat_objectives import BackdoorParams, IndiscriminateParams, backdoor_objective, indiscriminate_objective
from fl_sim.config.precision import QuantSpec
from fl_sim.data.triggers import apply_patch
from fl_sim.models import build_model
from fl_sim.quantization.fake_quant_model import fake_quantized
from tests.conftest import scenario_of, tiny_raw


def _setup():
    s = scenario_of(tiny_raw(attack={"target_label": 3}), "t")
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(6, 1, 28, 28, generator=g), torch.randint(0, 10, (6,), generator=g)
    return s, model, x, y


def test_backdoor_loss_matches_formula():
    s, model, x, y = _setup()
    p = BackdoorParams(bits=[8, 4], c1=0.7, c2=0.3)
    xt = apply_patch(x, 4, 1, 1.0)
    yt = torch.full_like(y, 3)
    want = F.cross_entropy(model(x), y) + 0.3 * F.cross_entropy(model(xt), y)
    for b in (8, 4):
        with fake_quantized(model, QuantSpec(bits=b)):
            q = model(torch.cat([x, xt]))
        want = want + 0.7 * (F.cross_entropy(q[:6], y) + 0.3 * F.cross_entropy(q[6:], yt))
    got = backdoor_objective(p, s)(model, x, y)
    assert torch.allclose(got, want, atol=1e-5)


def test_indiscriminate_loss_matches_formula():
    s, model, x, y = _setup()
    p = IndiscriminateParams(bits=[6], lam=0.25, alpha=5.0)
    with fake_quantized(model, QuantSpec(bits=6)):
        q = F.cross_entropy(model(x), y)
    want = F.cross_entropy(model(x), y) + 0.25 * (q - 5.0) ** 2
    assert torch.allclose(indiscriminate_objective(p, s)(model, x, y), want, atol=1e-5)


def test_backdoor_c_fp_weights_only_the_fp_trigger_term():
    s, model, x, y = _setup()
    base = backdoor_objective(BackdoorParams(bits=[4], c1=0.5, c2=0.5), s)(model, x, y)
    heavier = backdoor_objective(BackdoorParams(bits=[4], c1=0.5, c2=0.5, c_fp=1.5), s)(model, x, y)
    fp_trigger = F.cross_entropy(model(apply_patch(x, 4, 1, 1.0)), y)
    assert torch.allclose(heavier - base, 1.0 * fp_trigger, atol=1e-5)


def _constant_model(label: int) -> torch.nn.Module:
    """Predicts ``label`` for every input, in FP and quantized (zero weights, bias only)."""
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.zero_()
        m[1].bias[label] = 1.0
    return m


def test_backdoor_score_of_a_model_that_always_says_target():
    from fl_sim.clients.attack_scores import backdoor_score
    from fl_sim.data.tensors import ExampleSet

    s, _, x, _ = _setup()
    y = torch.tensor([3, 3, 1, 2, 5, 7])
    data = ExampleSet(x, y)
    # FP ASR = quantized ASR = 1 (score 0 from the ASR terms); FP accuracy 2/6 vs a reference 0.5.
    got = backdoor_score(_constant_model(3), data, [QuantSpec(bits=4)], s.attack.trigger, 3, 0.5, torch.device("cpu"))
    assert abs(got - (1.0 - 1.0 - (0.5 - 2 / 6))) < 1e-6


def test_keep_best_submits_the_epoch_with_the_highest_score():
    from fl_sim.clients.malicious_qat import QATBackdoor
    from fl_sim.clients.registry import TrainContext
    from fl_sim.data.tensors import ExampleSet

    s, model, _, _ = _setup()
    g = torch.Generator().manual_seed(2)
    data = ExampleSet(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    scores, states = iter([0.1, 0.7, 0.3, -1.0]), []

    class Scripted(QATBackdoor):
        def score(self, m, d, ctx, acc_ref):
            states.append({k: v.clone() for k, v in m.state_dict().items()})
            return next(scores)

    b = Scripted(BackdoorParams(bits=[4], keep_best=True, epochs=4))
    ctx = TrainContext(s, 1, 0, data, 4, torch.device("cpu"), torch.Generator().manual_seed(0))
    per_epoch = (64 + s.training.batch_size - 1) // s.training.batch_size
    _, best = b._malicious_training(model, data, ctx, torch.Generator().manual_seed(0), 4 * per_epoch)
    assert len(states) == 4
    assert all(torch.equal(best[k], states[1][k]) for k in best)
    assert not all(torch.equal(best[k], states[3][k]) for k in best)


def test_max_norm_ratio_bounds_the_submitted_update():
    from fl_sim.clients.collusion import state_distance
    from fl_sim.clients.malicious_qat import QATBackdoor
    from fl_sim.clients.registry import TrainContext
    from fl_sim.data.tensors import ExampleSet

    s = scenario_of(tiny_raw(attack={"collusion": "aggregation_aware", "start_round": 1}), "t")
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(2)
    data = ExampleSet(torch.rand(96, 1, 28, 28, generator=g), torch.randint(0, 10, (96,), generator=g))
    seen = {}

    class Spy(QATBackdoor):
        def _benign_estimate(self, m, d, ctx, gen, start, **kw):
            loss = super()._benign_estimate(m, d, ctx, gen, start, **kw)
            seen["estimate"] = {k: v.clone() for k, v in m.state_dict().items()}
            return loss

    start = {k: v.clone() for k, v in model.state_dict().items()}
    ratios = {}
    for bound in (None, 3.0):
        model.load_state_dict(start)
        ctx = TrainContext(
            s,
            1,
            0,
            data,
            4,
            torch.device("cpu"),
            torch.Generator().manual_seed(0),
            colluder_data=data,
            colluders_in_cohort=1,
            colluder_generator=torch.Generator().manual_seed(5),
        )
        Spy(BackdoorParams(bits=[4], epochs=3, lr=0.05, max_norm_ratio=bound))._attack(model, ctx)
        ratios[bound] = state_distance(model.state_dict(), start) / state_distance(seen["estimate"], start)
    assert ratios[None] > 3.0  # unbounded, the amplified submission is far larger ...
    assert ratios[3.0] <= 3.0 + 1e-4  # ... and the bound holds
