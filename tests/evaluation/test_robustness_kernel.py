"""Image robustness at the real-kernel precision: transferred examples are classified by the kernel;
no direct attack is claimed through a kernel that has no gradients."""

import torch

from fl_sim.data.federated import build_federated_data
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models import build_model
from fl_sim.reporting.eval_report import robustness_section
from tests.conftest import scenario_of, tiny_raw


def test_int8_dynamic_has_transferred_but_no_direct_figure(one_thread):
    s = scenario_of(
        tiny_raw(
            evaluation={
                "precisions": ["fp32", "int8_dynamic"],
                "robustness": {"attacks": ["fgsm"], "epsilons": [0.1], "examples": 20},
            }
        ),
        "t",
    )
    data = build_federated_data(s.data, s.federation.num_clients, s.seed)
    torch.manual_seed(0)
    ctx = EvalContext(build_model("mnist_cnn", 10, data.input_shape), data, s, torch.device("cpu"))
    rows = PROTOCOLS.get("robustness")(ctx)["rows"]
    kernel = [r for r in rows if r["precision"] == "int8_dynamic"]
    assert len(kernel) == 1 and kernel[0]["direct_accuracy"] is None
    assert 0 <= kernel[0]["transferred_accuracy"] <= 1
    assert "| fgsm | 0.1 | int8_dynamic |" in "\n".join(robustness_section({"examples": 20, "rows": rows}))
