"""Input checks and output contract shared by every robust aggregator."""

import math

import pytest
import torch

from strategies.centered_clipping import centered_clipping
from strategies.dnc import dnc
from strategies.flame import flame
from strategies.fltrust import fltrust
from strategies.foolsgold import foolsgold
from strategies.norm_clipping import norm_clipping
from strategies.rfa import geometric_median


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# Each takes (updates, weights); FLTrust and FoolsGold ignore example counts, as their papers do.
WEIGHTED = {
    "norm_clipping": lambda u, w: norm_clipping(u, w, 1.0),
    "flame": lambda u, w: flame(u, w, noise_lambda=0.0),
    "geometric_median": lambda u, w: geometric_median(u, w),
    "centered_clipping": lambda u, w: centered_clipping(u, w, None, 1.0),
    "dnc": lambda u, w: dnc(u, w, 0, _gen()),
}
UNWEIGHTED = {
    "fltrust": lambda u, w: fltrust(u, torch.ones(u.shape[-1])),
    "foolsgold": lambda u, w: foolsgold(u, u),
}
ALL = {**WEIGHTED, **UNWEIGHTED}


@pytest.mark.parametrize("name", ALL)
def test_rejects_no_clients(name):
    with pytest.raises(ValueError, match=r"n, d >= 1, got shape \(0, 3\)"):
        ALL[name](torch.empty(0, 3), torch.empty(0))


@pytest.mark.parametrize("name", ALL)
def test_rejects_non_matrix_and_non_finite_updates(name):
    with pytest.raises(ValueError, match=r"2-D \(n, d\)"):
        ALL[name](torch.ones(3), torch.ones(3))
    bad = torch.ones(3, 2)
    bad[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"clients \[2\]"):
        ALL[name](bad, torch.ones(3))


@pytest.mark.parametrize("name", ALL)
def test_rejects_integer_updates(name):
    with pytest.raises(TypeError, match="floating dtype"):
        ALL[name](torch.ones(3, 2, dtype=torch.int32), torch.ones(3))


@pytest.mark.parametrize("name", WEIGHTED)
def test_rejects_bad_weights(name):
    u = torch.randn(4, 3, generator=_gen())
    with pytest.raises(ValueError, match=r"shape \(4,\) to match updates, got \(3,\)"):
        WEIGHTED[name](u, torch.ones(3))
    with pytest.raises(ValueError, match=r">= 0, got \[1.0, -2.0, 1.0, 1.0\]"):
        WEIGHTED[name](u, torch.tensor([1.0, -2.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="positive sum"):
        WEIGHTED[name](u, torch.zeros(4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_output_contract(name, dtype):
    u = torch.randn(7, 5, generator=_gen(), dtype=dtype) + 1.0  # a common direction for FLTrust
    agg = ALL[name](u, torch.arange(1.0, 8.0))
    assert agg.update.shape == (5,) and agg.update.dtype == dtype
    assert agg.weights.shape == (7,) and agg.weights.dtype == torch.float64
    assert bool((agg.weights >= 0).all()) and float(agg.weights.sum()) == pytest.approx(1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name):
    # Generators stay on the CPU, so FLAME's noise and DnC's subsets are the same draws on both devices.
    u = torch.randn(9, 300, generator=_gen(), dtype=torch.float64) + 1.0
    w = torch.arange(1.0, 10.0)
    cpu, cuda = ALL[name](u, w), ALL[name](u.cuda(), w.cuda())
    assert cuda.update.device.type == "cuda" and cuda.weights.device.type == "cuda"
    assert torch.allclose(cuda.update.cpu(), cpu.update, atol=1e-10)
    assert torch.allclose(cuda.weights.cpu(), cpu.weights, atol=1e-10)
