"""Bucketing (Karimireddy, He, Jaggi, ICLR 2022).

The paper: "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing", ICLR 2022.

A pre-aggregator: the updates are randomly permuted and split into ceil(n / s) buckets of s (the last
may hold fewer); each bucket's plain mean is one input of the rule that follows, with the bucket's
summed example count. The permutation comes from the server's own seeded stream.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from pydantic import Field

from fl_sim.preaggregators import PREAGGREGATORS, Mixed, PreAggregator, PreParams
from strategies.aggregation_result import check_updates, check_weights


def bucket_mixing(n: int, s: int, permutation: torch.Tensor) -> torch.Tensor:
    """(ceil(n/s), n) float64 mixing: bucket j averages inputs permutation[j s : (j + 1) s]."""
    if s < 1:
        raise ValueError(f"bucket size s must be >= 1, got {s}")
    if sorted(permutation.tolist()) != list(range(n)):
        raise ValueError(f"permutation must reorder 0..{n - 1}, got {permutation.tolist()}")
    m = math.ceil(n / s)
    mixing = torch.zeros(m, n, dtype=torch.float64)
    for j in range(m):
        members = permutation[j * s : (j + 1) * s]
        mixing[j, members] = 1.0 / len(members)
    return mixing


def bucketing(updates: torch.Tensor, weights: torch.Tensor, s: int, generator: torch.Generator) -> Mixed:
    """Bucket means of (n, d) ``updates`` after a random permutation drawn from ``generator``."""
    x = check_updates(updates)
    n = x.shape[0]
    w = check_weights(weights, n, x.device)
    perm = torch.randperm(n, generator=generator, device=generator.device).cpu()
    mixing = bucket_mixing(n, s, perm).to(x.device)
    return Mixed((mixing @ x).to(updates.dtype), (mixing > 0).double() @ w, mixing)


class BucketingParams(PreParams):
    """The bucket size."""

    s: int = Field(2, ge=1, description="updates per bucket (the rule then sees ceil(n / s) bucket means)")


@PREAGGREGATORS.register("bucketing", "averages random buckets of s updates before the rule (Karimireddy et al. 2022)")
class BucketingStep(PreAggregator[BucketingParams]):
    """Bucketing with bucket size s."""

    Params = BucketingParams

    @classmethod
    def outputs(cls, params: PreParams, n: int) -> int:
        """ceil(n / s) buckets."""
        return math.ceil(n / cast(BucketingParams, params).s)

    def apply(self, updates: torch.Tensor, weights: torch.Tensor, generator: torch.Generator) -> Mixed:
        """Bucket means after a seeded permutation."""
        return bucketing(updates, weights, self.params.s, generator)
