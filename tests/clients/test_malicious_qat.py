"""Malicious-QAT objectives equal their formulas (../REFERENCE §1), assembled by hand here."""

import torch
import torch.nn.functional as F

from fl_sim.clients.malicious_qat import BackdoorParams, IndiscriminateParams, backdoor_objective, indiscriminate_objective
from fl_sim.config.loader import validate_dict
from fl_sim.data.triggers import apply_patch
from fl_sim.models import build_model
from fl_sim.quantization.fake_quant_model import fake_quantized
from fl_sim.quantization.spec import QuantSpec
from tests.conftest import tiny_raw


def _setup():
    s = validate_dict(tiny_raw(attack={"target_label": 3}), "t")
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
