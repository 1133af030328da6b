"""qat_rounding end to end on tiny data: sub-step moves only, the aggregate on the target, budgets kept, bad settings refused."""

import dataclasses

import pytest
import torch

from fl_sim.clients.qat_rounding import QATRounding, RoundingParams
from fl_sim.clients.registry import TrainContext
from fl_sim.clients.repair import quantized_weight_names
from fl_sim.data.tensors import ExampleSet
from fl_sim.errors import UserError
from fl_sim.models import build_model
from fl_sim.quantization.intervals import WeightQuantizer, quant_grid
from fl_sim.quantization.rounding import nearest, positions
from tests.conftest import scenario_of, tiny_raw, wired


def _setup(params: dict, seed: int = 0):
    attack = {"behaviour": "qat_rounding", "collusion": "aggregation_aware", "start_round": 1, "params": params}
    if params.get("objective") == "targeted_sample":
        attack["target_sample"] = 0
    raw = tiny_raw(attack=attack)
    raw["attack"]["params"] = params  # replace, not merge, tiny_raw's qat_backdoor params
    s = scenario_of(raw, "t")
    torch.manual_seed(seed)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(seed + 1)
    data = ExampleSet(torch.rand(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g))
    ctx = TrainContext(
        s,
        1,
        0,
        ExampleSet(data.x[:64], data.y[:64]),
        10,
        torch.device("cpu"),
        torch.Generator().manual_seed(0),
        colluder_data=data,
        colluders_in_cohort=2,
        colluder_generator=torch.Generator().manual_seed(5),
    )
    return QATRounding(wired(s).clients.attack.params), model, ctx


def test_fedavg_submission_lands_the_aggregate_on_sub_step_flips_of_the_estimate():
    attack, model, ctx = _setup({"against": "fedavg", "epochs": 2, "lr": 0.01, "benign_runs": 2})
    metrics = attack._attack(model, ctx)
    assert _flips_only(model.state_dict(), attack.target, quantized_weight_names(model)) == metrics["rounding_flips"] > 0


def _flips_only(c: dict, t: dict, names: list[str]) -> int:
    """Check that the FedAvg aim t moves h only by sub-step moves that each flip a rounding; count the flips."""
    q, flips = WeightQuantizer(4), 0
    for k in names:
        h = (5 * t[k] - c[k]) / 4  # c = h + (n / k)(t - h) with n = 10, k = 2
        grid = quant_grid(h, q)
        step = (positions(t[k], grid) - positions(h, grid)).abs()
        flipped = nearest(t[k], grid) != nearest(h, grid)
        assert torch.equal(step > 1e-3, flipped)  # only flips move (h is recovered up to float error), and every move flips
        assert float(step.max()) < 0.5 + 0.45 + 1e-3  # each move is shorter than a step
        flips += int(flipped.sum())
    return flips


def test_krum_submission_stays_within_its_distance_budget():
    attack, model, ctx = _setup({"against": "krum", "epochs": 2, "lr": 0.01, "benign_runs": 2})
    metrics = attack._attack(model, ctx)
    c, t = model.state_dict(), attack.target
    # Krum: the colluders submit the target itself (gain 1), at most budget x spread from h
    assert all(torch.equal(c[k], t[k]) for k in c)
    budget = attack.params.rule("fedavg").budget_for(10, 2, 2)
    assert budget is not None and metrics["rounding_spread"] > 0
    assert metrics["rounding_flips"] <= metrics["rounding_wanted"]


def test_order_rules_flip_only_what_the_order_statistics_reach():
    attack, model, ctx = _setup({"against": "fedmedian", "epochs": 1, "lr": 0.01, "benign_runs": 2, "margin": 0.0})
    metrics = attack._attack(model, ctx)
    assert metrics["rounding_missed"] == 0
    assert metrics["rounding_reachable"] < sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="no model of rule 'nope'"):
        RoundingParams(against="nope")
    assert RoundingParams().rule("krum") is RoundingParams(against="krum").rule("fedavg")
    with pytest.raises(ValueError, match="keep_best"):
        RoundingParams(keep_best=True)
    with pytest.raises(ValueError, match="distance_budget"):
        RoundingParams(distance_budget=-1)
    raw = tiny_raw(attack={"behaviour": "qat_rounding", "collusion": "independent", "params": {}})
    raw["attack"]["params"] = {}
    with pytest.raises(UserError, match="aggregation_aware"):
        scenario_of(raw, "t")
    raw["attack"].update(collusion="aggregation_aware", params={"objective": "targeted_sample"})
    with pytest.raises(UserError, match="target_sample"):
        scenario_of(raw, "t")


@pytest.mark.parametrize("objective", ["indiscriminate", "targeted_class", "targeted_sample"])
def test_every_objective_moves_the_aggregate_by_sub_step_flips_only(objective):
    attack, model, ctx = _setup({"against": "fedavg", "objective": objective, "epochs": 1, "lr": 0.01, "benign_runs": 2})
    if objective == "targeted_sample":
        ctx = dataclasses.replace(ctx, target_sample=ExampleSet(ctx.data.x[:1], ctx.data.y[:1]))
    metrics = attack._attack(model, ctx)
    assert _flips_only(model.state_dict(), attack.target, quantized_weight_names(model)) == metrics["rounding_flips"]


def test_against_the_quantization_screen_the_submission_scores_under_its_limit():
    attack, model, ctx = _setup({"against": "quant_aware", "epochs": 2, "lr": 0.01, "benign_runs": 2, "screen_samples": 64})
    metrics = attack._attack(model, ctx)
    # the bisection keeps the largest share of flips scoring under 1.5 x the benign runs' median (ratio <= 1),
    # unless even the unflipped estimate scores above it (then nothing is kept)
    assert metrics["rounding_screen_ratio"] <= 1.0 or metrics["rounding_flips"] == 0
    assert metrics["rounding_flips"] <= metrics["rounding_wanted"]
