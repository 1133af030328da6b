"""Data-free generator: loss formulas by hand, output shape/range, and that the probe generator
finds more FP/quantized disagreement than it started with."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.config.precision import QuantSpec
from fl_sim.quantization.datafree import (
    ConditionalGenerator,
    GeneratorConfig,
    calibration_loss,
    normalised_entropy,
    probe_loss,
    sample,
    train_generator,
)
from fl_sim.quantization.fake_quant_model import fake_quantized


def test_calibration_loss_by_hand():
    zp, zq, y = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.5, 0.0]]), torch.tensor([0])
    cfg = GeneratorConfig(beta=2.0, a_ds=0.1, a_as=1.0, lambda_l=0.3, lambda_u=0.8)
    p = F.softmax(zp - zq, 1)
    h = float(-(p * p.log()).sum() / math.log(3))
    margin = max(0.0, 0.3 - h) + max(0.0, h - 0.8)
    want = F.cross_entropy(zp, y) + margin + 2.0 * (0.1 * F.cross_entropy(zp - zq, y) + F.cross_entropy(zp + zq, y))
    assert torch.allclose(calibration_loss(zp, zq, y, cfg), want)
    assert abs(float(normalised_entropy(torch.zeros(1, 3))) - 1.0) < 1e-6


def test_probe_loss_rewards_disagreement():
    y = torch.tensor([0])
    zp = torch.tensor([[3.0, 0.0]])
    same, differ = probe_loss(zp, zp.clone(), y), probe_loss(zp, torch.tensor([[0.0, 3.0]]), y)
    assert float(differ) < float(same)


def test_generator_shape_and_range():
    g = ConditionalGenerator(10, (1, 28, 28))
    x, y = sample(g.eval(), 20, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x.shape == (20, 1, 28, 28) and x.min() >= 0 and x.max() <= 1 and y.tolist()[:3] == [0, 1, 2]


def test_probe_generator_increases_disagreement():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    spec = QuantSpec(bits=2)

    def kl_of(g, seed):
        x, _ = sample(g, 256, 4, torch.Generator().manual_seed(seed), torch.device("cpu"))
        with torch.no_grad():
            zp = model(x)
            with fake_quantized(model, spec):
                zq = model(x)
        return float(F.kl_div(F.log_softmax(zq, 1), F.log_softmax(zp, 1), reduction="batchmean", log_target=True))

    cfg = GeneratorConfig(steps=150, batch_size=32)
    untrained = train_generator(
        model,
        lambda: fake_quantized(model, spec),
        4,
        (1, 8, 8),
        True,
        GeneratorConfig(steps=1, batch_size=32),
        torch.Generator().manual_seed(1),
        torch.device("cpu"),
    )
    trained = train_generator(
        model, lambda: fake_quantized(model, spec), 4, (1, 8, 8), True, cfg, torch.Generator().manual_seed(1), torch.device("cpu")
    )
    assert kl_of(trained, 5) > kl_of(untrained, 5)
