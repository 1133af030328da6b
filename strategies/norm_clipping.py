"""Norm clipping with optional weak differential privacy (Sun et al. 2019).

The paper: Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated Learning?",
arXiv:1911.07963, 2019.

Each update is scaled to L2 norm at most M, ``x / max(1, ||x|| / M)`` (their Sec. 4, "norm
thresholding"), the clipped updates are averaged with the example-count weights, and "weak DP" adds
Gaussian noise N(0, sigma^2 I) to the average. The paper fixes M; ``max_norm=None`` takes the median
update norm of the round instead (the adaptive bound FLAME uses), averaging the two middle norms when n
is even.
"""

from __future__ import annotations

import math

import torch

from strategies.aggregation_result import Aggregate, check_updates, check_weights, gaussian_noise, median, weighted_mean


def clip_to_norm(x: torch.Tensor, bound: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each row of ``x`` longer than ``bound`` down to L2 norm ``bound``.

    Returns (clipped rows, bool mask of the rows that were scaled). A zero bound sends every nonzero row
    to zero; an infinite one changes nothing.
    """
    norms = torch.linalg.vector_norm(x, dim=1)
    clipped = norms > bound
    # norms > bound >= 0 wherever the ratio is used, so the division is safe.
    scale = torch.where(clipped, bound / torch.where(clipped, norms, torch.ones_like(norms)), torch.ones_like(norms))
    return x * scale.unsqueeze(1), clipped


def norm_clipping(
    updates: torch.Tensor,
    weights: torch.Tensor,
    max_norm: float | None,
    *,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> Aggregate:
    """Weighted mean of the updates clipped to L2 norm ``max_norm``, plus optional Gaussian noise.

    ``max_norm`` None takes the round's median update norm; N(0, ``noise_std``^2 I) noise drawn from
    ``generator`` is added when ``noise_std`` > 0.

    Clipping is not rejection: ``weights`` in the result are the normalized example weights and
    ``clipped`` marks the clients whose update was scaled down.
    """
    x = check_updates(updates)
    w = check_weights(weights, x.shape[0], x.device)
    if max_norm is not None and not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0 or None, got {max_norm}")
    if not (noise_std >= 0 and math.isfinite(noise_std)):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    bound = median(torch.linalg.vector_norm(x, dim=1)) if max_norm is None else float(max_norm)
    clipped_x, clipped = clip_to_norm(x, bound)
    mean, w = weighted_mean(clipped_x, w)
    mean = mean + gaussian_noise(x.shape[1], noise_std, generator, x.device)
    return Aggregate(update=mean.to(updates.dtype), weights=w, clipped=clipped)


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    TensorDefense,
)


class NormClippingParams(NoParams):
    """The clip bound and the optional noise."""

    max_norm: float | None = Field(None, gt=0, description="clip bound M (default: the round's median update norm)")
    noise_std: float = Field(0.0, ge=0, description="std of the Gaussian noise added to the aggregate (weak DP; 0 = off)")


@STRATEGIES.register("norm_clipping", "norm clipping with optional weak-DP noise (Sun et al. 2019)")
class NormClippingDefense(TensorDefense[NormClippingParams]):
    """Norm clipping, its noise drawn from the server's own stream."""

    Params = NormClippingParams

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Clip each update to the bound, average, add noise."""
        gen = self.knowledge.generator("norm_clipping", r.server_round)
        return norm_clipping(r.updates, r.weights, self.params.max_norm, noise_std=self.params.noise_std, generator=gen)


from fl_sim.rule_replicas import REPLICAS  # noqa: E402


@REPLICAS.register("norm_clipping", "clipping to the round's median update norm, no noise (the defaults)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return norm_clipping(updates.double(), counts, None).update
