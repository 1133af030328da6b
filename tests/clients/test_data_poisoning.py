"""FP data-poisoning attacks against hand-computed cases: the poisoned batch, the flipped labels,
the BadNets objective, and model replacement's exact gamma = n/k scaling of the FP-backdoor update."""

import pytest
import torch
import torch.nn.functional as F

from fl_sim.clients.data_poisoning import (
    FPBackdoor,
    FPBackdoorParams,
    LabelFlipParams,
    ModelReplacement,
    ModelReplacementParams,
    flip_labels,
    fp_backdoor_objective,
    label_flip_objective,
    poison_batch,
)
from fl_sim.clients.registry import TrainContext
from fl_sim.config.schema import TriggerConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.models import build_model
from tests.conftest import scenario_of, tiny_raw

CPU = torch.device("cpu")


def test_poison_batch_patches_and_relabels_the_first_examples_only():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    x0, y0 = x.clone(), y.clone()
    trig = TriggerConfig(size=2, margin=1, value=0.25)
    xp, yp = poison_batch(x, y, 0.5, trig, 9)
    # round(0.5 * 6) = 3 poisoned: rows/cols 8-1-2 .. 8-1 = 5:7 set to 0.25, label 9.
    want = x0.clone()
    want[:3, :, 5:7, 5:7] = 0.25
    assert torch.equal(xp, want)
    assert yp.tolist() == [9, 9, 9, 3, 4, 5]
    assert torch.equal(x, x0) and torch.equal(y, y0)  # input left untouched


@pytest.mark.parametrize("fraction,k", [(1 / 3, 2), (1.0, 6), (0.05, 0), (0.25, 2)])  # round(1.5) = 2
def test_poison_batch_count_is_round_fraction_times_n(fraction, k):
    x = torch.zeros(6, 1, 8, 8)
    y = torch.zeros(6, dtype=torch.int64)
    xp, yp = poison_batch(x, y, fraction, TriggerConfig(size=2, margin=0, value=1.0), 4)
    assert (yp == 4).sum().item() == k and torch.all(yp[:k] == 4)
    assert torch.all(xp[:k, :, 6:8, 6:8] == 1.0) and xp[k:].sum() == 0 and xp[:k].sum() == 4 * k
    assert torch.equal(x, torch.zeros(6, 1, 8, 8)) and torch.equal(y, torch.zeros(6, dtype=torch.int64))


def test_flip_labels_both_modes():
    y = torch.tensor([0, 1, 2, 9, 3, 2])
    y0 = y.clone()
    assert flip_labels(y, 10, None, 5).tolist() == [9, 8, 7, 0, 6, 7]
    assert flip_labels(y, 10, 2, 5).tolist() == [0, 1, 5, 9, 3, 5]
    assert flip_labels(torch.tensor([0, 1, 2, 3]), 4, None, 0).tolist() == [3, 2, 1, 0]
    assert flip_labels(y, 10, 4, 5).tolist() == y0.tolist()  # source class absent: nothing flips
    assert torch.equal(y, y0)


def _setup():
    s = scenario_of(tiny_raw(attack={"behaviour": "fp_backdoor", "start_round": 1, "target_label": 7, "params": {}}), "t")
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 10, (1, 28, 28))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(6, 1, 28, 28, generator=g), torch.tensor([0, 1, 2, 3, 4, 5])
    return s, model, x, y


def test_fp_backdoor_objective_is_ce_on_the_hand_poisoned_batch():
    s, model, x, y = _setup()
    xp = x.clone()
    xp[:4, :, 23:27, 23:27] = 1.0  # default trigger: size 4, margin 1, value 1.0 on 28x28; round(0.6 * 6) = 4
    yp = torch.tensor([7, 7, 7, 7, 4, 5])
    want = F.cross_entropy(model(xp), yp)
    got = fp_backdoor_objective(0.6, s)(model, x, y)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, F.cross_entropy(model(x), y), atol=1e-4)


def test_label_flip_objective_is_ce_on_flipped_labels():
    s, model, x, y = _setup()
    got = label_flip_objective(LabelFlipParams(source_label=2), s, 10)(model, x, y)
    assert torch.allclose(got, F.cross_entropy(model(x), torch.tensor([0, 1, 7, 3, 4, 5])), atol=1e-6)
    got_all = label_flip_objective(LabelFlipParams(), s, 10)(model, x, y)
    assert torch.allclose(got_all, F.cross_entropy(model(x), torch.tensor([9, 8, 7, 6, 5, 4])), atol=1e-6)


def _small_model() -> torch.nn.Module:
    """A fast stand-in for mnist_cnn (the scaling does not depend on the architecture)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 5, stride=3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 10)
    )


def _run(behaviour, s, model, start, data, server_round=1, cohort=6, colluders=2):
    model.load_state_dict(start)
    ctx = TrainContext(
        s, server_round, 0, data, cohort, CPU, torch.Generator().manual_seed(11), colluders_in_cohort=colluders, num_classes=10
    )
    behaviour.train(model, ctx)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("scale,gamma", [(None, 6 / 2), (2.5, 2.5)])
def test_model_replacement_scales_the_fp_backdoor_update_by_gamma(scale, gamma):
    s, _, _, _ = _setup()
    model = _small_model()
    g = torch.Generator().manual_seed(2)
    data = ExampleSet(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fp = _run(FPBackdoor(FPBackdoorParams(poison_fraction=0.5)), s, model, start, data)
    rep = _run(ModelReplacement(ModelReplacementParams(poison_fraction=0.5, scale=scale)), s, model, start, data)
    assert any((fp[k] - start[k]).abs().max() > 1e-4 for k in start)  # the backdoor update is not trivial
    for k in start:
        assert torch.allclose(rep[k] - start[k], gamma * (fp[k] - start[k]), atol=1e-6, rtol=1e-4), k


def test_model_replacement_is_honest_outside_the_attack_rounds():
    s = scenario_of(tiny_raw(attack={"behaviour": "model_replacement", "start_round": 2, "params": {}}), "t")
    model = _small_model()
    g = torch.Generator().manual_seed(2)
    data = ExampleSet(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    from fl_sim.clients.honest import Honest

    honest = _run(Honest(Honest.Params()), s, model, start, data, server_round=1)
    rep = _run(ModelReplacement(ModelReplacementParams()), s, model, start, data, server_round=1)
    assert all(torch.equal(rep[k], honest[k]) for k in start)
    attacked = _run(ModelReplacement(ModelReplacementParams()), s, model, start, data, server_round=2)
    assert not all(torch.allclose(attacked[k], honest[k]) for k in start)


@pytest.mark.parametrize("collusion", ["aggregation_aware", "omniscient"])
def test_model_replacement_under_coordinated_collusion_is_not_scaled_twice(collusion):
    """The aggregation-aware submission (or the omniscient adversary's exact solve) already places
    the FedAvg aggregate on the colluders' model."""
    s = scenario_of(tiny_raw(attack={"behaviour": "model_replacement", "collusion": collusion, "params": {}}), "t")
    model = _small_model()
    g = torch.Generator().manual_seed(2)
    data = ExampleSet(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fp = _run(FPBackdoor(FPBackdoorParams()), s, model, start, data, cohort=4, colluders=2)
    rep = _run(ModelReplacement(ModelReplacementParams()), s, model, start, data, cohort=4, colluders=2)
    assert any((fp[k] - start[k]).abs().max() > 1e-4 for k in start)
    assert all(torch.allclose(rep[k], fp[k], atol=1e-6) for k in start)


def test_attack_labels_are_checked_against_the_dataset():
    from fl_sim.data.attack_targets import check_attack_targets
    from fl_sim.data.federated import federated_data

    def check(attack):
        s = scenario_of(tiny_raw(attack=attack), "t")
        check_attack_targets(federated_data(s.data, s.federation.num_clients, s.seed), s.attack)

    check({"behaviour": "label_flip", "params": {"source_label": 9}, "target_label": 1})
    with pytest.raises(ValueError, match="target_label 10 is not a class"):
        check({"behaviour": "fp_backdoor", "params": {}, "target_label": 10})
    with pytest.raises(ValueError, match="source_label 12 is not a class"):
        check({"behaviour": "label_flip", "params": {"source_label": 12}})
    s = scenario_of(tiny_raw(), "t")
    label = int(federated_data(s.data, s.federation.num_clients, s.seed).test.y[0])
    with pytest.raises(ValueError, match="already is of class target_label"):
        check({"behaviour": "qat_targeted_sample", "params": {}, "target_sample": 0, "target_label": label})
