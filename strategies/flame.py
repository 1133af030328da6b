"""FLAME (Nguyen et al., "FLAME: Taming Backdoors in Federated Learning", USENIX Security 2022), Alg. 1.

1. Filtering: HDBSCAN on the pairwise cosine distances, min cluster size n/2 + 1; the clients outside
   the majority cluster are rejected. The paper clusters the local *models*; with every update taken
   against the same global model, clustering the *updates* (local model minus global model) is the
   common re-implementation and the one used here.
2. Adaptive clipping: S_t = median of the L2 norms of ALL updates (the Euclidean distances between the
   local models and the global model); each kept update is scaled by min(1, S_t / ||x_i||).
3. Adaptive noising: the equal-weight mean of the kept clipped updates gets Gaussian noise with
   std = lambda * S_t (lambda = 0.001 for image classification in the paper).

The clustering follows the usual open re-implementations: sklearn's HDBSCAN with ``min_samples=1``
and ``allow_single_cluster=True`` (with a minimum cluster size above n/2 the only possible cluster is
the root, which HDBSCAN otherwise never selects). Note that in the single-cluster case HDBSCAN keeps
only the points that stay in the cluster down to its densest level, so some benign updates on the
cluster's rim can be rejected too. sklearn needs the (n, n) distances on the CPU; everything else stays
on the input's device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.cluster import HDBSCAN

from strategies.aggregation_result import (
    Aggregate,
    check_updates,
    check_weights,
    cosine_similarity,
    gaussian_noise,
    median,
    weighted_mean,
)
from strategies.norm_clipping import clip_to_norm


def majority_cluster(updates: torch.Tensor, min_cluster_size: int | None = None, min_samples: int = 1) -> torch.Tensor:
    """(n,) bool mask of the updates in the largest HDBSCAN cluster of their cosine distances.

    ``min_cluster_size`` defaults to n // 2 + 1. A single update is its own majority.
    """
    x = check_updates(updates)
    n = x.shape[0]
    mcs = n // 2 + 1 if min_cluster_size is None else min_cluster_size
    if n == 1 and min_cluster_size is None:
        return torch.ones(1, dtype=torch.bool, device=x.device)
    if not 2 <= mcs <= n:
        raise ValueError(f"min_cluster_size must be in [2, n={n}], got {mcs}")
    if not 1 <= min_samples <= n:
        raise ValueError(f"min_samples must be in [1, n={n}], got {min_samples}")
    dist = (1.0 - cosine_similarity(x)).clamp(0.0, 2.0)
    dist.fill_diagonal_(0.0)
    dist = (dist + dist.T) / 2  # exact symmetry for sklearn
    labels = (
        HDBSCAN(min_cluster_size=mcs, min_samples=min_samples, metric="precomputed", allow_single_cluster=True, copy=True)
        .fit(dist.cpu().numpy())
        .labels_
    )
    found = labels[labels >= 0]
    if found.size == 0:
        return torch.zeros(n, dtype=torch.bool, device=x.device)
    largest = np.bincount(found).argmax()  # ties: the lowest label, deterministic
    return torch.as_tensor(labels == largest, device=x.device)


def flame(
    updates: torch.Tensor,
    weights: torch.Tensor,
    *,
    noise_lambda: float = 0.001,
    min_cluster_size: int | None = None,
    min_samples: int = 1,
    weighted: bool = False,
    generator: torch.Generator | None = None,
) -> Aggregate:
    """FLAME aggregate: cluster, clip the kept updates to the median norm S_t, average, add noise.

    The noise is N(0, (``noise_lambda`` S_t)^2 I), drawn from ``generator``.

    The kept updates are averaged with equal weights, as in the paper; ``weighted=True`` uses the
    example counts ``weights`` instead. If no cluster is found the aggregate is the zero update with no
    noise (nothing was aggregated) and every weight is 0. ``clipped`` marks the kept updates that were
    scaled down (rejected ones are not in the aggregate, so they are never marked).
    """
    x = check_updates(updates)
    w = check_weights(weights, x.shape[0], x.device)
    if not (noise_lambda >= 0 and math.isfinite(noise_lambda)):
        raise ValueError(f"noise_lambda must be finite and >= 0, got {noise_lambda}")
    keep = majority_cluster(updates, min_cluster_size, min_samples)
    s_t = median(torch.linalg.vector_norm(x, dim=1))
    clipped_x, clipped = clip_to_norm(x, s_t)
    mean, w = weighted_mean(clipped_x, w if weighted else torch.ones_like(w), keep)
    if bool(keep.any()):
        mean = mean + gaussian_noise(x.shape[1], noise_lambda * float(s_t), generator, x.device)
    return Aggregate(update=mean.to(updates.dtype), weights=w, clipped=clipped & keep)


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    TensorDefense,
)


class FlameParams(NoParams):
    """FLAME's noise level and cluster size."""

    noise_lambda: float = Field(0.001, ge=0, description="noise std as a fraction of the median update norm")
    min_cluster_size: int | None = Field(None, ge=2, description="HDBSCAN's min cluster size (default: n//2 + 1)")


@STRATEGIES.register("flame", "FLAME: HDBSCAN on cosine distances, clip to the median norm, add noise (Nguyen et al. 2022)")
class FlameDefense(TensorDefense[FlameParams]):
    """FLAME, its noise drawn from the server's own stream."""

    Params = FlameParams

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Cluster, clip, average, add noise."""
        gen = self.knowledge.generator("flame", r.server_round)
        p = self.params
        return flame(r.updates, r.weights, noise_lambda=p.noise_lambda, min_cluster_size=p.min_cluster_size, generator=gen)


from fl_sim.rule_replicas import REPLICAS  # noqa: E402


@REPLICAS.register("flame", "clustering, median-norm clipping and the equal-weight mean; no noise (the server's draw is unknown)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return flame(updates.double(), counts, noise_lambda=0.0).update
