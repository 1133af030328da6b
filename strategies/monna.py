"""MoNNA (Farhadkhani et al., ICML 2023).

The paper: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with
Linear Gradient Overhead", ICML 2023.

The plain mean of the n - f updates nearest to a trusted pivot. In the paper the pivot is the honest
node's own momentum; here the server is the trusted party, and its pivot is its own update: the global
model trained on its calibration (root) set as an honest client would (as FLTrust's server update).
"""

from __future__ import annotations

import torch
from pydantic import Field

from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES, AssumedF, RoundInput, TensorDefense
from strategies.aggregation_result import Aggregate, check_updates, check_vector, refuse_f_at_least_n
from strategies.fltrust import server_update
from strategies.krum import assumed_f, selection_weights


def monna(updates: torch.Tensor, pivot: torch.Tensor, f: int) -> Aggregate:
    """Mean of the n - f of (n, d) ``updates`` nearest to the (d,) ``pivot`` (ties to the lower index)."""
    x = check_updates(updates)
    n = x.shape[0]
    if not 0 <= f < n:
        raise ValueError(f"MoNNA needs 0 <= f < n, got f={f}, n={n}")
    p = check_vector(pivot, x.shape[1], x.device, "pivot")
    dist = (x - p).norm(dim=1)
    picked = torch.argsort(dist, stable=True)[: n - f]
    w = selection_weights(n, picked).to(x.device)
    return Aggregate(update=(w @ x).to(updates.dtype), weights=w)


@REPLICAS.register("monna", "pivot assumed at the coordinate-wise median (the server's root data is unknown)")
def _replica(updates: torch.Tensor, counts: torch.Tensor, f: int) -> torch.Tensor:
    return monna(updates, updates.quantile(0.5, dim=0), min(f, updates.shape[0] - 1)).update


class MoNNAParams(AssumedF):
    """The assumed f and how long the server trains its pivot."""

    root_epochs: int | None = Field(None, ge=1, description="epochs over the root set for the pivot (default: training.epochs)")


@STRATEGIES.register("monna", "mean of the n-f updates nearest the server's own root-data update (Farhadkhani et al. 2023)")
class MoNNADefense(TensorDefense[MoNNAParams]):
    """MoNNA around the server's own update."""

    Params = MoNNAParams

    @classmethod
    def check(cls, params: MoNNAParams, assumed_f: int | None, cohort_size: int) -> None:  # type: ignore[override]
        """Refuse f >= n."""
        refuse_f_at_least_n(assumed_f, cohort_size)

    def aggregate(self, r: RoundInput) -> Aggregate:
        """The n - f updates nearest the server's update, averaged."""
        epochs = self.params.root_epochs or self.knowledge.training.epochs
        pivot = server_update(self.knowledge, r, epochs)
        return monna(r.updates, pivot, min(assumed_f(self.knowledge), r.updates.shape[0] - 1))
