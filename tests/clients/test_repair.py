"""The repair method: projected descent keeps the target's integers exactly; margins from the
benign spread; the attack end to end on tiny data, including the aggregate under an error below
the margin."""

import pytest
import torch

from fl_sim.clients.local_training import cross_entropy_loss
from fl_sim.clients.malicious_qat import QATBackdoor
from fl_sim.clients.qat_objectives import BackdoorParams, Method
from fl_sim.clients.registry import TrainContext
from fl_sim.clients.repair import (
    auto_margins,
    integer_hit_rate,
    quantized_weight_names,
    repair,
    sparsify_flips,
    weight_boxes,
    weight_quantizer,
)
from fl_sim.config.precision import QuantSpec
from fl_sim.data.tensors import ExampleSet
from fl_sim.models import build_model
from fl_sim.quantization.intervals import WeightQuantizer, quant_grid
from tests.conftest import scenario_of, tiny_raw, wired


def _model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(seed + 1)
    return model, ExampleSet(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))


def test_repair_moves_the_fp_model_but_never_an_integer():
    s = scenario_of(tiny_raw(), "t")
    model, data = _model_and_data()
    target = {k: v.clone() for k, v in model.state_dict().items()}
    names = quantized_weight_names(model)
    q = WeightQuantizer(4)
    boxes = weight_boxes(target, names, [q], {k: 0.1 for k in names})
    repair(
        model,
        data,
        cross_entropy_loss,
        cross_entropy_loss,
        boxes,
        s.training,
        6,
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
        0.01,
        quant_weight=1.0,
    )
    after = model.state_dict()
    assert any(not torch.equal(after[k], target[k]) for k in names)  # the FP model did move ...
    assert integer_hit_rate(after, target, names, q) == 1.0  # ... and its int4 model did not
    for k in names:
        assert torch.equal(quant_grid(after[k], q).step, quant_grid(target[k], q).step)


def test_auto_margin_is_z_times_the_expected_aggregate_error_in_steps():
    w = torch.tensor([[0.7, -0.35, 0.0, 0.1]])
    runs = [{"w": w + 0.01}, {"w": w - 0.01}]  # per-weight std = 0.01 * sqrt(2)
    q = WeightQuantizer(4)
    got = auto_margins(runs, ["w"], q, cohort=10, colluders=2, z=3.0, floor=0.0)["w"]
    sigma = 0.01 * 2**0.5
    err = (8 / 10) * sigma * (1 / 8 + 1 / 2) ** 0.5
    want = 3 * err / float(quant_grid(w, q).step)
    assert torch.allclose(got, torch.full_like(w, want), rtol=1e-5)
    assert bool((auto_margins(runs, ["w"], q, 10, 2, z=1e6, floor=0.0)["w"] == 0.45).all())  # clipped
    # Per weight: scaled by the weight's mean |update| over the tensor's RMS |update|.
    start = {"w": w - torch.tensor([[0.0, 0.01, 0.02, 0.04]])}
    moved = torch.tensor([0.01, 0.01, 0.02, 0.04])  # mean over the runs of |run - start|
    rel = moved / moved.pow(2).mean().sqrt()
    per = auto_margins(runs, ["w"], q, 10, 2, z=3.0, floor=0.0, start=start)["w"]
    assert torch.allclose(per.flatten(), (want * rel).clamp(max=0.45), rtol=1e-4)
    with pytest.raises(ValueError, match="benign runs"):
        auto_margins(runs[:1], ["w"], q, 10, 2, 3.0, 0.05)


def test_integer_hit_rate_by_hand():
    q = WeightQuantizer(2)  # symmetric: step = max|w| / 1
    t = {"w": torch.tensor([1.0, 0.2, -0.2, -1.0])}  # integers 1, 0, 0, -1
    s = {"w": torch.tensor([1.0, 0.7, -0.2, -1.0])}  # 0.7 rounds to 1
    assert integer_hit_rate(s, t, ["w"], q) == 0.75


def test_sparsify_keeps_the_furthest_moves_only():
    q = WeightQuantizer(4)
    anchor = {"w": torch.tensor([0.7, 0.0, 0.0, 0.0, 0.0])}  # step 0.1
    target = {"w": torch.tensor([0.7, 0.36, 0.06, 0.16, 0.02])}  # flips: 0.36 (4 steps), 0.06 (1), 0.16 (2)
    out = sparsify_flips(target, anchor, ["w"], q, keep=1 / 3)
    assert torch.allclose(out["w"], torch.tensor([0.7, 0.36, 0.0, 0.0, 0.0]))


def _ctx(s, data, colluders=1):
    return TrainContext(
        s,
        1,
        0,
        data,
        4,
        torch.device("cpu"),
        torch.Generator().manual_seed(0),
        colluder_data=data,
        colluders_in_cohort=colluders,
        colluder_generator=torch.Generator().manual_seed(5),
    )


def test_repair_attack_lands_an_aggregate_with_error_below_the_margin_on_the_target_integers():
    raw = tiny_raw(
        attack={
            "collusion": "aggregation_aware",
            "start_round": 1,
            "params": {"bits": [4], "method": "repair", "margin": 0.2, "epochs": 1, "repair_epochs": 1},
        }
    )
    s = scenario_of(raw, "t")
    model, data = _model_and_data(3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    attack = QATBackdoor(wired(s).clients.attack.params)
    assert attack.params.method is Method.REPAIR
    attack._attack(model, _ctx(s, data))
    target, names, q = attack.target, quantized_weight_names(model), weight_quantizer(QuantSpec(4))
    submission = model.state_dict()
    assert target is not None and any(not torch.equal(submission[k], start[k]) for k in names)
    # Any aggregate within 0.2 steps of the target (coordinate-wise, the scale-setting weight kept)
    # quantizes to the target's integers; noise of a full step does not.
    g = torch.Generator().manual_seed(9)

    def perturbed(size: float) -> dict:
        out = {}
        for k, v in target.items():
            if k not in names:
                out[k] = v
                continue
            keep = v.abs() == v.abs().max()
            out[k] = torch.where(keep, v, v + (torch.rand(v.shape, generator=g) - 0.5) * 2 * size * quant_grid(v, q).step)
        return out

    assert integer_hit_rate(perturbed(0.19), target, names, q) == 1.0
    assert integer_hit_rate(perturbed(1.0), target, names, q) < 0.9


def test_repair_refuses_options_it_cannot_honour():
    with pytest.raises(ValueError, match="keep_best"):
        BackdoorParams(method="repair", keep_best=True, benign_runs=2)
    with pytest.raises(ValueError, match="max_norm_ratio"):
        BackdoorParams(method="repair", max_norm_ratio=5, benign_runs=2)
    with pytest.raises(ValueError, match="benign_runs"):
        BackdoorParams(method="repair", margin="auto", benign_runs=1)
    with pytest.raises(ValueError, match="margin"):
        BackdoorParams(method="repair", margin=0.6)


@pytest.mark.parametrize("behaviour", ["qat_backdoor", "qat_indiscriminate", "qat_targeted_class", "qat_targeted_sample"])
def test_every_objective_attack_repairs_inside_its_targets_intervals(behaviour):
    from fl_sim.components import BEHAVIOURS

    attack = {
        "behaviour": behaviour,
        "collusion": "aggregation_aware",
        "start_round": 1,
        "params": {"bits": [4], "method": "repair", "margin": 0.1, "epochs": 1, "repair_epochs": 1},
    }
    if behaviour == "qat_targeted_sample":
        attack["target_sample"] = 0
    s = scenario_of(tiny_raw(attack=attack), "t")
    model, data = _model_and_data(4)
    star = ExampleSet(data.x[:1], data.y[:1])
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
        target_sample=star,
    )
    b = BEHAVIOURS.get(behaviour)(wired(s).clients.attack.params)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    b._attack(model, ctx)
    names = quantized_weight_names(model)
    # The target sits inside its own margin-shrunk intervals: every weight at least 0.1 steps from a boundary
    # (the scale-setting ones excepted), and the submission moved away from the start.
    from fl_sim.quantization.intervals import boundary_distance

    for k in names:
        d = boundary_distance(b.target[k], WeightQuantizer(4))
        keep = b.target[k].abs() != b.target[k].abs().max()
        assert float(d[keep].min()) >= 0.1 - 1e-5
    assert any(not torch.equal(model.state_dict()[k], start[k]) for k in names)
