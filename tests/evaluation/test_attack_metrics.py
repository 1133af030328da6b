"""``evaluate_precisions``' attack metrics on models whose predictions are known exactly at every
precision: target-class accuracy and targeted-sample success."""

import pytest
import torch

from fl_sim.config.schema import AttackConfig, EvaluationConfig
from fl_sim.data.federated import FederatedData
from fl_sim.data.tensors import ExampleSet
from fl_sim.evaluation.precisions import evaluate_precisions

CFG = EvaluationConfig(precisions=["fp32", "int8", "int4"], device="cpu")
Y = [3, 1, 3, 0, 2, 3]  # three images of class 3


def _images(n: int) -> torch.Tensor:
    x = torch.ones(n, 1, 8, 8)
    x[:, 0, 0, 1] = 0.0  # activation range [0, 1]: every input value is a grid point at any bit width
    return x


def _data(y: list[int] = Y) -> FederatedData:
    calib = ExampleSet(_images(4), torch.tensor([0, 1, 2, 3]))
    return FederatedData("hand", 10, [calib], calib, ExampleSet(_images(len(y)), torch.tensor(y)))


def _linear() -> torch.nn.Sequential:
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.zero_()
    return m


def _constant_model(label: int) -> torch.nn.Module:
    """Predicts ``label`` for every input, in FP and quantized (zero weights, bias only)."""
    m = _linear()
    with torch.no_grad():
        m[1].bias[label] = 1.0
    return m


def _flip_model() -> torch.nn.Module:
    """FP logits on ``_images``: class 1 = 63 x 0.03 = 1.89, class 3 = 1.0 -> predicts 1. Per-tensor
    symmetric weights, scale qmax / 1.0: int8 0.03 -> 4/127 (class 1: 1.98, still 1); int4 0.03 -> 0
    (class 1: 0) -> predicts 3."""
    m = _linear()
    with torch.no_grad():
        m[1].weight[1] = 0.03
        m[1].weight[3, 0] = 1.0
    return m


def test_target_class_accuracy_of_constant_models():
    attack = AttackConfig(target_label=3)
    says_target = evaluate_precisions(_constant_model(3), _data(), CFG, attack)
    says_other = evaluate_precisions(_constant_model(1), _data(), CFG, attack)
    for p in CFG.precisions:
        assert says_target[p]["target_class_accuracy"] == 1.0
        assert says_target[p]["accuracy"] == pytest.approx(3 / 6)
        assert says_other[p]["target_class_accuracy"] == 0.0
        assert says_other[p]["accuracy"] == pytest.approx(1 / 6)


def test_target_class_accuracy_is_none_without_target_class_images():
    got = evaluate_precisions(_constant_model(3), _data([0, 1, 2]), CFG, AttackConfig(target_label=3))
    assert all(got[p]["target_class_accuracy"] is None for p in CFG.precisions)


def test_target_sample_success_of_constant_models():
    data = _data()
    assert all(
        v["target_sample_success"] is None
        for v in evaluate_precisions(_constant_model(3), data, CFG, AttackConfig(target_label=3)).values()
    )
    attack = AttackConfig(behaviour="qat_targeted_sample", target_label=3, target_sample=1)  # x* has label 1
    hit = evaluate_precisions(_constant_model(3), data, CFG, attack)
    miss = evaluate_precisions(_constant_model(1), data, CFG, attack)
    assert all(hit[p]["target_sample_success"] == 1.0 and miss[p]["target_sample_success"] == 0.0 for p in CFG.precisions)


def test_attack_metrics_of_a_model_that_flips_once_quantized():
    attack = AttackConfig(behaviour="qat_targeted_sample", target_label=3, target_sample=1)
    got = evaluate_precisions(_flip_model(), _data(), CFG, attack)
    assert {p: got[p]["target_sample_success"] for p in CFG.precisions} == {"fp32": 0.0, "int8": 0.0, "int4": 1.0}
    assert {p: got[p]["target_class_accuracy"] for p in CFG.precisions} == {"fp32": 0.0, "int8": 0.0, "int4": 1.0}
    assert got["int4"]["accuracy"] == pytest.approx(3 / 6) and got["fp32"]["accuracy"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("index", [6, 100])
def test_target_sample_outside_the_test_set_raises(index):
    attack = AttackConfig(behaviour="qat_targeted_sample", target_label=3, target_sample=index)
    with pytest.raises(ValueError, match=f"attack.target_sample {index} is outside the test set \\(6 images\\)"):
        evaluate_precisions(_constant_model(3), _data(), CFG, attack)


def test_last_test_image_is_a_valid_target_sample():
    attack = AttackConfig(behaviour="qat_targeted_sample", target_label=3, target_sample=5)
    got = evaluate_precisions(_constant_model(3), _data(), CFG, attack, ["fp32"])
    assert list(got) == ["fp32"] and got["fp32"]["target_sample_success"] == 1.0
