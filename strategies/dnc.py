"""Divide-and-Conquer, DnC (Shejwalkar, Houmansadr, NDSS 2021), Algorithm 2.

The paper: Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks and
Defenses for Federated Learning", NDSS 2021.

Each of ``iterations`` rounds draws a random subset of b coordinates, centres the sub-vectors by their
(unweighted) mean mu, takes the top right singular vector v of the centred matrix, scores each client
by s_i = <x_i - mu, v>^2 and keeps the n - floor(c m) lowest scores (c the filtering fraction, m the
assumed number of malicious clients). The good set is the intersection over rounds and the aggregate
is the example-count-weighted mean of the good set (the paper's AGR_avg).
"""

from __future__ import annotations

import math

import torch

from strategies.aggregation_result import Aggregate, check_updates, check_weights, weighted_mean


def dnc_scores(sub_updates: torch.Tensor) -> torch.Tensor:
    """Outlier scores s_i = <x_i - mu, v>^2 of the (n, b) rows.

    v is the top right singular vector of the centred rows (squared, so the sign of v does not matter).
    """
    x = check_updates(sub_updates)
    centred = x - x.mean(dim=0)
    top = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    scores: torch.Tensor = (centred @ top) ** 2  # torch types Tensor.__pow__ as returning Any
    return scores


def dnc(
    updates: torch.Tensor,
    weights: torch.Tensor,
    num_malicious: int,
    generator: torch.Generator,
    *,
    sub_dim: int = 10_000,
    iterations: int = 5,
    filter_frac: float = 1.0,
) -> Aggregate:
    """DnC aggregate: the weighted mean of the updates never among the highest outlier scores.

    Over ``iterations`` random coordinate subsets of size min(``sub_dim``, d) drawn from ``generator``
    (on its own device, so one seed gives one subset sequence on any device), the updates among the
    floor(``filter_frac`` * ``num_malicious``) highest scores are removed.

    Parameters
    ----------
    updates : torch.Tensor
        (n, d) client updates.
    weights : torch.Tensor
        (n,) nonnegative example counts, the weights of the final mean.
    num_malicious : int
        The assumed number m of malicious clients, >= 0.
    generator : torch.Generator
        The seeded source of the coordinate subsets.
    sub_dim : int
        Coordinates sampled per iteration (b), >= 1.
    iterations : int
        Number of random subsets, >= 1.
    filter_frac : float
        The filtering fraction c: floor(c m) updates are removed per iteration; it must leave at least one.
    """
    x = check_updates(updates)
    w = check_weights(weights, x.shape[0], x.device)
    n, d = x.shape
    if num_malicious < 0:
        raise ValueError(f"num_malicious must be >= 0, got {num_malicious}")
    if not (filter_frac >= 0 and math.isfinite(filter_frac)):
        raise ValueError(f"filter_frac must be finite and >= 0, got {filter_frac}")
    if sub_dim < 1:
        raise ValueError(f"sub_dim must be >= 1, got {sub_dim}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    num_kept = n - math.floor(filter_frac * num_malicious)
    if num_kept < 1:
        raise ValueError(f"filter_frac * num_malicious = {filter_frac * num_malicious} removes all n={n} updates; it must be < n")
    keep = torch.ones(n, dtype=torch.bool, device=x.device)
    b = min(sub_dim, d)
    for _ in range(iterations):
        coords = torch.randperm(d, generator=generator, device=generator.device)[:b].sort().values.to(x.device)
        scores = dnc_scores(x[:, coords])
        good = torch.zeros_like(keep)
        good[torch.argsort(scores, stable=True)[:num_kept]] = True
        keep &= good
    mean, w = weighted_mean(x, w, keep)
    return Aggregate(update=mean.to(updates.dtype), weights=w)


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    AssumedF,
    RoundInput,
    TensorDefense,
)
from strategies.krum import assumed_f  # noqa: E402


class DnCParams(AssumedF):
    """DnC's assumed f, subsampling and filtering."""

    sub_dim: int = Field(10_000, ge=1, description="coordinates sampled per iteration")
    iterations: int = Field(5, ge=1)
    filter_frac: float = Field(1.0, gt=0, description="removes floor(filter_frac x f) clients per iteration")


@STRATEGIES.register("dnc", "Divide-and-Conquer: SVD outlier scores on random coordinate subsets (Shejwalkar & Houmansadr 2021)")
class DnCDefense(TensorDefense[DnCParams]):
    """DnC with the assumed f, its subsets drawn from the server's own stream."""

    Params = DnCParams

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Remove the SVD outliers, average the rest."""
        p, gen = self.params, self.knowledge.generator("dnc", r.server_round)
        return dnc(
            r.updates,
            r.weights,
            assumed_f(self.knowledge),
            gen,
            sub_dim=p.sub_dim,
            iterations=p.iterations,
            filter_frac=p.filter_frac,
        )
