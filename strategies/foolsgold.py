"""FoolsGold (Fung, Yoon, Beschastnikh, "The Limitations of Federated Learning in Sybil Settings", RAID 2020), Algorithm 1.

Sybils pushing the same poisoned objective keep sending similar updates, so FoolsGold scores each
client by the cosine similarity of its aggregate history H_i (the sum of all its updates so far):

    cs_ij = cos(H_i, H_j) with cs_ii = 0;  v_i = max_j cs_ij
    pardoning: cs_ij *= v_i / v_j wherever v_j > v_i
    alpha_i = 1 - max_j cs_ij, clipped to [0, 1];  alpha = alpha / max(alpha)
    alpha_i = kappa (ln(alpha_i / (1 - alpha_i)) + 0.5), alpha_i = 1 mapped to 0.99 first; clipped to [0, 1]

following the authors' reference code (diagonal zeroed, so v_i >= 0 and the pardoning ratio is always
defined). The paper adds sum_i alpha_i Delta_i to the model; here the current updates are averaged with
the normalized alphas, as FL re-implementations do, so the step does not grow with the number of
clients. Example counts play no part, as in the paper; the optional feature-importance weighting of
the paper is left out.
"""

from __future__ import annotations

import math

import torch

from strategies.aggregation_result import Aggregate, check_updates, cosine_similarity, weighted_mean


def foolsgold_weights(history: torch.Tensor, *, kappa: float = 1.0) -> torch.Tensor:
    """(n,) float64 FoolsGold learning rates alpha in [0, 1] for the (n, d) client histories.

    If every client is a perfect copy of another (max alpha = 0) all weights are 0.
    """
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be finite and > 0, got {kappa}")
    h = check_updates(history)
    cs = cosine_similarity(h)
    cs.fill_diagonal_(0.0)
    v = cs.max(dim=1).values
    pardon = v.unsqueeze(0) > v.unsqueeze(1)  # [i, j]: v_j > v_i, hence v_j > 0
    ratio = v.unsqueeze(1) / torch.where(pardon, v.unsqueeze(0), torch.ones_like(cs))
    cs = torch.where(pardon, cs * ratio, cs)
    alpha = (1.0 - cs.max(dim=1).values).clamp(0.0, 1.0)
    top = alpha.max()
    if not float(top) > 0:
        return torch.zeros_like(alpha)
    alpha = alpha / top
    alpha = torch.where(alpha == 1.0, torch.full_like(alpha, 0.99), alpha)
    # ln(0) = -inf is clipped to 0 below, as in the reference code.
    return (kappa * (torch.log(alpha / (1.0 - alpha)) + 0.5)).clamp(0.0, 1.0)


def foolsgold(updates: torch.Tensor, history: torch.Tensor, *, kappa: float = 1.0) -> Aggregate:
    """Mean of this round's ``updates`` (n, d) weighted by the normalized FoolsGold weights of ``history``.

    ``history`` (n, d) holds each client's summed updates, this round's included (Alg. 1 sums over
    every round up to the current one); row i of both must be the same client. All-zero FoolsGold
    weights give the zero update.
    """
    x = check_updates(updates)
    h = check_updates(history)
    if h.shape != x.shape:
        raise ValueError(f"history must have the shape of updates {tuple(x.shape)}, got {tuple(h.shape)}")
    mean, w = weighted_mean(x, foolsgold_weights(history, kappa=kappa).to(x.device))
    return Aggregate(update=mean.to(updates.dtype), weights=w)


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    ServerKnowledge,
    TensorDefense,
)


class FoolsGoldParams(NoParams):
    """The logit's confidence."""

    kappa: float = Field(1.0, gt=0, description="confidence of the logit in the weight formula")


@STRATEGIES.register("foolsgold", "FoolsGold: down-weights clients whose update histories are alike (Fung et al. 2020)")
class FoolsGoldDefense(TensorDefense[FoolsGoldParams]):
    """FoolsGold over each client's summed update history."""

    Params = FoolsGoldParams

    def __init__(self, knowledge: ServerKnowledge) -> None:
        super().__init__(knowledge)
        self.history: dict[int, torch.Tensor] = {}  # partition id -> sum of its updates so far

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Add the round to the histories, weight by their similarity."""
        for p, u in zip(r.pids, r.updates):
            self.history[p] = self.history[p] + u if p in self.history else u.clone()
        return foolsgold(r.updates, torch.stack([self.history[p] for p in r.pids]), kappa=self.params.kappa)
