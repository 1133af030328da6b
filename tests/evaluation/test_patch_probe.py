"""The pre-release patch probe on hand-made FP / "quantized" pairs whose disagreement is known."""

import pytest
import torch
from torch import nn

from fl_sim.evaluation.patch_probe import ProbeConfig, disagreement, optimise_patch, patch_positions, stamp


def test_stamp_pastes_the_patch_and_leaves_the_rest():
    x = torch.zeros(2, 1, 6, 6)
    p = torch.full((1, 2, 2), 0.7)
    y = stamp(x, p, 3, 1)
    assert torch.equal(y[:, :, 3:5, 1:3], torch.full((2, 1, 2, 2), 0.7))
    assert float(y.sum()) == pytest.approx(2 * 4 * 0.7)


def test_positions_cover_the_image_from_edge_to_edge():
    assert patch_positions(28, 28, 5, 4) == [(t, u) for t in (0, 8, 15, 23) for u in (0, 8, 15, 23)]
    assert patch_positions(28, 28, 5, 1) == [(11, 11)]
    with pytest.raises(ValueError, match="does not fit"):
        patch_positions(4, 4, 5, 2)


class _Fp(nn.Module):
    """A linear classifier on 8x8 images."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class _Twin(nn.Module):
    """The FP model, plus (when ``planted``) a class-0 logit gated open by a bright bottom-right 3x3 corner."""

    def __init__(self, fp: nn.Module, planted: bool) -> None:
        super().__init__()
        self.fp, self.planted = fp, planted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fp(x)
        if self.planted:
            corner = x[:, 0, 5:, 5:].mean(dim=(1, 2))
            out = (
                out
                + torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4)
                * 40
                * torch.sigmoid(20 * (corner - 0.8))[:, None]
            )
        return out


def test_probe_finds_a_corner_trigger_that_only_the_twin_obeys_and_beats_noise():
    fp = _Fp().requires_grad_(False)
    x = torch.rand(128, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.5
    cfg = ProbeConfig(patch=3, steps=60, lr=0.2)
    planted, clean = _Twin(fp, True), _Twin(fp, False)
    gen = torch.Generator().manual_seed(2)
    patch = optimise_patch(fp, planted, x[:64], 5, 5, cfg, gen)
    found = disagreement(fp, planted, stamp(x[64:], patch, 5, 5))
    noise = disagreement(fp, planted, stamp(x[64:], torch.rand(1, 3, 3, generator=gen), 5, 5))
    assert found > 0.5 > noise
    # Elsewhere, or with a twin that equals the FP model, no patch splits them.
    elsewhere = optimise_patch(fp, planted, x[:64], 0, 0, cfg, gen)
    assert disagreement(fp, planted, stamp(x[64:], elsewhere, 0, 0)) < 0.1
    assert disagreement(fp, clean, stamp(x[64:], optimise_patch(fp, clean, x[:64], 5, 5, cfg, gen), 5, 5)) == 0.0


def test_probe_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="lr"):
        ProbeConfig(lr=0)
