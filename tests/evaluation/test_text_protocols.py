"""The evaluation protocols on a text model: robustness runs the word-substitution attack, the
real-kernel check, worst-case PTQ with token-noise draws, a refusal where there is no text
counterpart, honest QAT and the text backdoor's loss, and TextAttack's absence reported, not raised."""

import sys

import pytest
import torch

from fl_sim.clients.data_poisoning import fp_backdoor_objective
from fl_sim.clients.honest import qat_loss
from fl_sim.clients.qat_objectives import BackdoorParams, IndiscriminateParams, backdoor_objective, indiscriminate_objective
from fl_sim.config.precision import QuantSpec
from fl_sim.data.federated import build_federated_data
from fl_sim.errors import UserError
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models import build_model
from tests.conftest import scenario_of
from tests.server.test_text_end_to_end import _data


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sst2")
    _data(folder)
    s = scenario_of(
        {
            "name": "t",
            "seed": 0,
            "data": {"source": "sst2", "path": str(folder), "calibration_size": 8, "max_length": 16},
            "model": {"name": "hf_text", "pretrained": "minilm"},
            "federation": {"num_clients": 2},
            "attack": {"num_malicious": 1, "target_label": 1},
            "evaluation": {
                "precisions": ["fp32", "int8_dynamic", "int4"],
                "batch_size": 16,
                "word_attack": {"examples": 4, "candidates": 2},
                "worst_case": {"draws": 2, "sizes": [4], "distributions": ["corrupted"], "client_examples": 4},
            },
        },
        "t",
    )
    data = build_federated_data(s.data, 2, 0)
    torch.manual_seed(0)
    model = build_model("hf_text", 2, data.input_shape, "minilm")
    return EvalContext(model, data, s, torch.device("cpu"))


def test_robustness_on_text_runs_the_word_attack(ctx):
    r = PROTOCOLS.get("robustness")(ctx)
    assert r["attack"] == "greedy_embedding" and r["examples"] == 4
    assert [row["precision"] for row in r["rows"]] == ["fp32", "int8_dynamic", "int4"]
    for row in r["rows"]:
        assert 0 <= row["adversarial_accuracy"] <= row["clean_accuracy"] <= 1
        assert row["mean_queries"] >= 1 or row["clean_accuracy"] == 0


def test_kernel_check_and_worst_case_on_text(ctx):
    k = PROTOCOLS.get("kernel_check")(ctx)
    assert k["examples"] == len(ctx.data.test) and 0 <= k["prediction_agreement"] <= 1
    w = PROTOCOLS.get("worst_case")(ctx)
    assert set(w["summary"]) == {"int4"} and w["summary"]["int4"]["draws"] == 2


def test_data_free_refuses_text(ctx):
    with pytest.raises(UserError, match="no text counterpart"):
        PROTOCOLS.get("data_free")(ctx)


def test_honest_qat_and_the_attack_losses_train_on_text(ctx):
    x, y = ctx.data.test.x[:4], ctx.data.test.y[:4]
    model = ctx.model
    losses = (
        qat_loss(QuantSpec(bits=8)),
        backdoor_objective(BackdoorParams(bits=[4]), ctx.scenario, ctx.data.text),
        indiscriminate_objective(IndiscriminateParams(bits=[4]), ctx.scenario),
        fp_backdoor_objective(0.5, ctx.scenario, ctx.data.text),
    )
    for loss in losses:
        model.zero_grad()
        value = loss(model, x, y)
        value.backward()
        assert torch.isfinite(value) and model.hf.classifier.weight.grad.abs().sum() > 0


def test_textattack_missing_is_reported(ctx, monkeypatch):
    from fl_sim.evaluation.textattack_recipes import run_recipes

    monkeypatch.setitem(sys.modules, "textattack", None)  # as if not installed
    got = run_recipes(["textfooler", "pwws"], ctx, ctx.data.test.x[:2], ctx.data.test.y[:2])
    assert set(got) == {"textfooler", "pwws"}
    assert not got["pwws"]["available"] and "textattack cannot be imported" in got["pwws"]["reason"]


def test_mitigations_run_on_a_text_model_and_the_probe_refuses_it(ctx):
    mitigation = ctx.scenario.evaluation.mitigation.model_copy(
        update={
            "methods": ["efrap", "lac", "noise"],
            "bits": [4],
            "efrap": ctx.scenario.evaluation.mitigation.efrap.model_copy(update={"steps": 2}),
            "noise": ctx.scenario.evaluation.mitigation.noise.model_copy(update={"sigmas": [0.25], "draws": 1}),
        }
    )
    s = ctx.scenario.model_copy(update={"evaluation": ctx.scenario.evaluation.model_copy(update={"mitigation": mitigation})})
    text_ctx = EvalContext(ctx.model, ctx.data, s, ctx.device)
    r = PROTOCOLS.get("mitigation")(text_ctx)
    assert list(r["methods"]) == ["efrap", "lac", "noise"]
    for entry in r["methods"].values():
        for row in entry["rows"].values():
            assert 0 <= row["int4"]["accuracy"] <= 1
    with pytest.raises(UserError, match="prerelease"):
        PROTOCOLS.get("prerelease")(text_ctx)
