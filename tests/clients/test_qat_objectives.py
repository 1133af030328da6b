"""Targeted-class / targeted-sample malicious-QAT objectives equal their formulas (assembled by hand
here), the attack quantizer's settings reach QuantSpec, and the attackers' scores match hand-computed
values on models whose FP and quantized predictions are known exactly."""

import pytest
import torch
import torch.nn.functional as F

from fl_sim.clients.attack_scores import targeted_class_score, targeted_sample_score
from fl_sim.clients.qat_objectives import (
    TargetedClassParams,
    TargetedSampleParams,
    targeted_class_objective,
    targeted_sample_objective,
)
from fl_sim.config.precision import Granularity, QuantSpec
from fl_sim.data.tensors import ExampleSet
from fl_sim.models import build_model
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized
from tests.conftest import scenario_of, tiny_raw

TARGET = 3
CPU = torch.device("cpu")


def _setup(y: list[int]):
    s = scenario_of(tiny_raw(attack={"target_label": TARGET}), "t")
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(len(y), 1, 28, 28, generator=g)
    return s, model, x, torch.tensor(y)


def _star() -> ExampleSet:
    g = torch.Generator().manual_seed(7)
    return ExampleSet(torch.rand(1, 1, 28, 28, generator=g), torch.tensor([5]))


# ---- targeted class: CE(f(x_other), y) + CE(f(x_c), y_c) + lam sum_b (CE(Q_b f(x_c), y_c) - alpha)^2


def test_targeted_class_loss_matches_formula():
    s, model, x, y = _setup([3, 1, 3, 7, 0, 3])
    p = TargetedClassParams(bits=[8, 4], lam=0.3, alpha=2.0)
    c = y == TARGET
    want = F.cross_entropy(model(x[~c]), y[~c]) + F.cross_entropy(model(x[c]), y[c])
    for b in (8, 4):
        with fake_quantized(model, QuantSpec(bits=b)):  # dynamic ranges, on the class-c examples only
            want = want + 0.3 * (F.cross_entropy(model(x[c]), y[c]) - 2.0) ** 2
    got = targeted_class_objective(p, s)(model, x, y)
    assert torch.allclose(got, want, atol=1e-5)


def test_targeted_class_loss_without_a_target_example_is_the_plain_fp_loss():
    s, model, x, y = _setup([1, 2, 7, 0])
    p = TargetedClassParams(bits=[4], lam=10.0, alpha=4.0)
    got = targeted_class_objective(p, s)(model, x, y)
    assert torch.allclose(got, F.cross_entropy(model(x), y), atol=1e-6)
    got.backward()  # still a differentiable loss
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in model.parameters())


def test_targeted_class_loss_with_only_target_examples():
    s, model, x, y = _setup([3, 3, 3])
    p = TargetedClassParams(bits=[6], lam=0.5, alpha=1.0)
    with fake_quantized(model, QuantSpec(bits=6)):
        q = F.cross_entropy(model(x), y)
    want = F.cross_entropy(model(x), y) + 0.5 * (q - 1.0) ** 2
    assert torch.allclose(targeted_class_objective(p, s)(model, x, y), want, atol=1e-5)


def test_targeted_class_loss_with_calibrated_ranges_uses_the_whole_batch():
    s, model, x, y = _setup([3, 1, 3, 7])
    p = TargetedClassParams(bits=[4], lam=1.0, alpha=3.0, activations="calibrated")
    c = y == TARGET
    ranges = calibrate_ranges(model, [x])
    with fake_quantized(model, QuantSpec(bits=4), ranges):
        q = F.cross_entropy(model(x[c]), y[c])
    want = F.cross_entropy(model(x[~c]), y[~c]) + F.cross_entropy(model(x[c]), y[c]) + (q - 3.0) ** 2
    assert torch.allclose(targeted_class_objective(p, s)(model, x, y), want, atol=1e-5)


# ---- targeted sample: CE(f([x; x*]), [y; y*]) + lam sum_b CE(Q_b f([x; x*]), [y; y_target])


def test_targeted_sample_loss_matches_formula():
    s, model, x, y = _setup([3, 1, 4, 7, 0])
    star = _star()
    p = TargetedSampleParams(bits=[8, 4], lam=0.7)
    both = torch.cat([x, star.x])
    want = F.cross_entropy(model(both), torch.cat([y, torch.tensor([5])]))
    for b in (8, 4):
        with fake_quantized(model, QuantSpec(bits=b)):
            want = want + 0.7 * F.cross_entropy(model(both), torch.cat([y, torch.tensor([TARGET])]))
    got = targeted_sample_objective(p, s, star)(model, x, y)
    assert torch.allclose(got, want, atol=1e-5)


def test_targeted_sample_loss_with_calibrated_ranges_from_the_clean_batch():
    s, model, x, y = _setup([3, 1, 4, 7, 0])
    star = _star()
    p = TargetedSampleParams(bits=[4], lam=2.0, activations="calibrated")
    both = torch.cat([x, star.x])
    with fake_quantized(model, QuantSpec(bits=4), calibrate_ranges(model, [x])):
        q = F.cross_entropy(model(both), torch.cat([y, torch.tensor([TARGET])]))
    want = F.cross_entropy(model(both), torch.cat([y, torch.tensor([5])])) + 2.0 * q
    assert torch.allclose(targeted_sample_objective(p, s, star)(model, x, y), want, atol=1e-5)


# ---- the attack's own quantizer


def test_specs_carry_symmetry_and_granularity():
    p = TargetedClassParams(bits=[8, 4], weight_symmetric=False, act_symmetric=True, granularity="per_channel")
    assert p.specs() == [
        QuantSpec(
            bits=b, weight_symmetric=False, act_symmetric=True, granularity=Granularity.PER_CHANNEL, quantize_activations=True
        )
        for b in (8, 4)
    ]
    default = TargetedSampleParams(bits=[5]).specs()
    assert default == [QuantSpec(bits=5, weight_symmetric=True, act_symmetric=False, granularity=Granularity.PER_TENSOR)]


def test_objective_trains_against_its_own_asymmetric_quantizer():
    s, model, x, y = _setup([3, 1, 3, 7, 0, 3])
    spec = QuantSpec(bits=4, weight_symmetric=False, act_symmetric=True, granularity=Granularity.PER_CHANNEL)
    kw = dict(bits=[4], lam=1.0, alpha=0.5)
    asym = TargetedClassParams(**kw, weight_symmetric=False, act_symmetric=True, granularity="per_channel")
    got = targeted_class_objective(asym, s)(model, x, y)
    c = y == TARGET
    with fake_quantized(model, spec):
        q = F.cross_entropy(model(x[c]), y[c])
    want = F.cross_entropy(model(x[~c]), y[~c]) + F.cross_entropy(model(x[c]), y[c]) + (q - 0.5) ** 2
    assert torch.allclose(got, want, atol=1e-5)
    sym = targeted_class_objective(TargetedClassParams(**kw), s)(model, x, y)
    assert not torch.allclose(got, sym, atol=1e-4)


def test_targeted_sample_objective_under_an_asymmetric_quantizer_differs():
    s, model, x, y = _setup([3, 1, 7])
    star = _star()
    s_asym = targeted_sample_objective(
        TargetedSampleParams(bits=[4], weight_symmetric=False, act_symmetric=True, granularity="per_channel"), s, star
    )(model, x, y)
    s_sym = targeted_sample_objective(TargetedSampleParams(bits=[4]), s, star)(model, x, y)
    assert not torch.allclose(s_asym, s_sym, atol=1e-4)


# ---- scores


def _constant_model(label: int) -> torch.nn.Module:
    """Predicts ``label`` for every input, in FP and quantized (zero weights, bias only)."""
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.zero_()
        m[1].bias[label] = 1.0
    return m


def _flip_model() -> torch.nn.Module:
    """On the inputs of ``_flip_data`` (ones, one pixel 0): FP logits 3.132 for class 1 and 1.0 for
    class 3. Per-tensor symmetric quantization has scale qmax / 1.0: at 8 bits 0.004 -> 1/127 (class 1
    still wins), at 2 or 4 bits 0.004 -> 0 (class 3 wins). Per-channel 2-bit keeps 0.004 exactly."""
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.zero_()
        m[1].weight[1] = 0.004
        m[1].weight[3, 0] = 1.0
    return m


def _flip_data(y: list[int]) -> ExampleSet:
    x = torch.ones(len(y), 1, 28, 28)
    x[:, 0, 0, 1] = 0.0  # calibrated activation range [0, 1]: every input value is a grid point
    return ExampleSet(x, torch.tensor(y))


def test_flip_model_predictions_are_as_designed():
    from fl_sim.clients.attack_scores import _predict_at

    data = _flip_data([0, 1])
    assert _predict_at(_flip_model(), None, data.x, data.x, CPU).tolist() == [1, 1]
    assert _predict_at(_flip_model(), QuantSpec(bits=8), data.x, data.x, CPU).tolist() == [1, 1]
    assert _predict_at(_flip_model(), QuantSpec(bits=2), data.x, data.x, CPU).tolist() == [3, 3]


def test_targeted_class_score_of_a_constant_model():
    data = ExampleSet(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 3, 1, 2, 5, 7]))
    specs = [QuantSpec(bits=8), QuantSpec(bits=4)]
    # FP = quantized: no class-c drop; FP accuracy 2/6 against a reference of 0.5.
    assert targeted_class_score(_constant_model(3), data, specs, 3, 0.5, CPU) == pytest.approx(-(0.5 - 2 / 6))
    assert targeted_class_score(_constant_model(3), data, specs, 3, 0.2, CPU) == pytest.approx(0.0)
    # Class 9 is absent from the data: only the accuracy penalty (FP accuracy 1/6 for label 1).
    assert targeted_class_score(_constant_model(1), data, specs, 9, 0.5, CPU) == pytest.approx(-(0.5 - 1 / 6))


def test_targeted_class_score_of_a_model_that_flips_once_quantized():
    data = _flip_data([1, 1, 1, 0, 2])  # FP predicts 1 everywhere: accuracy 3/5, class-1 accuracy 1
    low = [QuantSpec(bits=2)]
    assert targeted_class_score(_flip_model(), data, low, 1, 0.0, CPU) == pytest.approx(1.0)
    assert targeted_class_score(_flip_model(), data, low, 1, 0.8, CPU) == pytest.approx(1.0 - (0.8 - 0.6))
    # The score is the smallest drop over the attacked precisions: int8 does not flip.
    assert targeted_class_score(_flip_model(), data, [QuantSpec(bits=8), QuantSpec(bits=2)], 1, 0.0, CPU) == pytest.approx(0.0)
    # Per-channel 2-bit keeps the small row: no drop.
    pc = [QuantSpec(bits=2, granularity=Granularity.PER_CHANNEL)]
    assert targeted_class_score(_flip_model(), data, pc, 1, 0.0, CPU) == pytest.approx(0.0)


def test_targeted_sample_score_of_a_constant_model():
    data = ExampleSet(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 3, 1, 2, 5, 7]))
    star = _star()
    specs = [QuantSpec(bits=4)]
    # Says the target in FP and quantized: q_hit - fp_hit = 0; FP accuracy 2/6.
    assert targeted_sample_score(_constant_model(3), data, star, specs, 3, 0.5, CPU) == pytest.approx(-(0.5 - 2 / 6))
    # Never says the target: 0 - 0; FP accuracy 1/6 (label 1) against a lower reference: no penalty.
    assert targeted_sample_score(_constant_model(1), data, star, specs, 3, 0.1, CPU) == pytest.approx(0.0)


def test_targeted_sample_score_of_a_model_that_flips_once_quantized():
    data = _flip_data([1, 1, 0, 2])  # FP accuracy 2/4
    star = ExampleSet(data.x[:1], torch.tensor([1]))
    assert targeted_sample_score(_flip_model(), data, star, [QuantSpec(bits=2)], 3, 0.0, CPU) == pytest.approx(1.0)
    assert targeted_sample_score(_flip_model(), data, star, [QuantSpec(bits=2)], 3, 0.75, CPU) == pytest.approx(1.0 - 0.25)
    assert targeted_sample_score(_flip_model(), data, star, [QuantSpec(bits=4), QuantSpec(bits=8)], 3, 0.0, CPU) == pytest.approx(
        0.0
    )
    # Target 1 is what FP already says: a quantized miss scores -1.
    assert targeted_sample_score(_flip_model(), data, star, [QuantSpec(bits=2)], 1, 0.0, CPU) == pytest.approx(-1.0)


def test_keep_best_split_always_leaves_training_data():
    from fl_sim.clients.objective_attack import _split

    data = ExampleSet(torch.rand(50, 1, 28, 28), torch.zeros(50, dtype=torch.long))
    train, held = _split(data, 0.99, torch.Generator().manual_seed(0))
    assert len(train) == 1 and len(held) == 49
    with pytest.raises(ValueError, match="at least 2 examples"):
        _split(ExampleSet(torch.rand(1, 1, 28, 28), torch.zeros(1, dtype=torch.long)), 0.2, torch.Generator())
