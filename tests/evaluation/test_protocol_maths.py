"""Calibration draws, evasion attacks, group accuracy and the real-kernel twin, on small tensors."""

import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.config.schema import Distribution
from fl_sim.data.tensors import ExampleSet
from fl_sim.evaluation.adversarial import fgsm, pgd
from fl_sim.evaluation.calibration_draws import draw_calibration
from fl_sim.evaluation.protocols.worst_case import group_accuracy
from fl_sim.quantization.real_int8 import dynamic_int8, fake_dynamic_int8


def _clients():
    g = torch.Generator().manual_seed(0)
    return [
        ExampleSet(torch.rand(40, 1, 4, 4, generator=g) * 0.5 + 0.25 * i, torch.randint(0, 10, (40,), generator=g))
        for i in range(3)
    ]


def test_imbalanced_draws_hold_few_classes_and_client_draws_one_client():
    clients = _clients()
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        d = draw_calibration(clients, 30, Distribution.IMBALANCED, 10, g)
        assert 0 < len(d) <= 30 and len(d.y.unique()) <= 3
        c = draw_calibration(clients, 30, Distribution.CLIENT, 10, g)
        assert len(c) == 30 and any(torch.isin(c.x.flatten(1), cl.x.flatten(1)).all() for cl in clients)


def test_corrupted_draws_stay_in_range_and_differ():
    clients = _clients()
    d = draw_calibration(clients, 25, Distribution.CORRUPTED, 10, torch.Generator().manual_seed(2))
    clean = draw_calibration(clients, 25, Distribution.IN_DISTRIBUTION, 10, torch.Generator().manual_seed(2))
    assert d.x.min() >= 0 and d.x.max() <= 1 and not torch.equal(d.x, clean.x) and torch.equal(d.y, clean.y)


def test_group_accuracy_by_hand():
    pred, y = torch.tensor([1, 2, 2, 0, 1]), torch.tensor([1, 2, 0, 0, 2])
    groups = torch.tensor([0, 0, 1, 1, 3])
    acc = group_accuracy(pred, y, groups, 4)
    assert acc[0] == 1.0 and acc[1] == 0.5 and torch.isnan(acc[2]) and acc[3] == 0.0


def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_fgsm_is_the_signed_gradient_step():
    m = _linear()
    x, y = torch.rand(5, 1, 4, 4) * 0.5 + 0.25, torch.tensor([0, 1, 2, 0, 1])
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(m(xr), y).backward()
    assert torch.allclose(fgsm(m, x, y, 0.1), (x + 0.1 * xr.grad.sign()).clamp(0, 1))


def test_pgd_stays_in_the_ball_and_hurts_more_than_nothing():
    m = _linear()
    x, y = torch.rand(64, 1, 4, 4), m(torch.rand(64, 1, 4, 4)).argmax(1)
    y = m(x).argmax(1)  # the model is right on every clean input
    adv = pgd(m, x, y, 0.2, 10, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (m(adv).argmax(1) == y).float().mean() < 1.0


def test_fake_dynamic_int8_agrees_with_the_real_kernel():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = torch.rand(256, 1, 8, 8)
    with torch.no_grad():
        real = dynamic_int8(m)(x)
        with fake_dynamic_int8(m):
            fake = m(x)
        fp = m(x)
    assert torch.equal(real.argmax(1), fake.argmax(1))
    # The twin reproduces the kernel up to float rounding, far closer than FP32 is to it.
    assert (real - fake).abs().max() < 1e-4 < (real - fp).abs().max()
