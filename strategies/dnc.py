"""Divide-and-Conquer, DnC (Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model
Poisoning Attacks and Defenses for Federated Learning", NDSS 2021), Algorithm 2.

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
    """Outlier scores s_i = <x_i - mu, v>^2 of the (n, b) rows, v the top right singular vector of the
    centred rows (squared, so the sign of v does not matter)."""
    x = check_updates(sub_updates)
    centred = x - x.mean(dim=0)
    top = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    return (centred @ top) ** 2


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
    """DnC aggregate: the weighted mean of the updates never among the floor(``filter_frac`` *
    ``num_malicious``) highest scores over ``iterations`` random coordinate subsets of size
    min(``sub_dim``, d) drawn from ``generator`` (on its own device, so one seed gives one subset
    sequence on any device)."""
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
        raise ValueError(
            f"filter_frac * num_malicious = {filter_frac * num_malicious} removes all n={n} updates; it must be < n"
        )
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


# ---- registration (the Flower side is fl_sim.server.tensor_strategy) ----

from pydantic import Field  # noqa: E402

from fl_sim.seeding import torch_generator  # noqa: E402
from fl_sim.server.strategy_registry import STRATEGIES, AssumedF  # noqa: E402
from fl_sim.server.tensor_strategy import RoundInput, ServerSide, TensorSpec  # noqa: E402


class DnCParams(AssumedF):
    sub_dim: int = Field(10_000, ge=1, description="coordinates sampled per iteration")
    iterations: int = Field(5, ge=1)
    filter_frac: float = Field(1.0, gt=0, description="removes floor(filter_frac x f) clients per iteration")


@STRATEGIES.register("dnc", "Divide-and-Conquer: SVD outlier scores on random coordinate subsets (Shejwalkar & Houmansadr 2021)")
class DnCSpec(TensorSpec):
    Params = DnCParams

    @classmethod
    def rule(cls, params, num_malicious_assumed, cohort_size, server: ServerSide):
        f, seed = params.f(num_malicious_assumed), server.scenario.seed

        def aggregate(r: RoundInput) -> Aggregate:
            gen = torch_generator(seed, "dnc", r.server_round)
            return dnc(r.updates, r.weights, f, gen, sub_dim=params.sub_dim, iterations=params.iterations, filter_frac=params.filter_frac)

        return aggregate
