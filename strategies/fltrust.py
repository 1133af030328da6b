"""FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping", NDSS 2021).

The server trains on a small clean root dataset to get its own update g_0. Each client update g_i gets
the trust score TS_i = ReLU(cos(g_i, g_0)), is rescaled to the norm of g_0, and the aggregate is
sum_i TS_i (||g_0|| / ||g_i||) g_i / sum_i TS_i (their Eq. 4). Example counts play no part, as in the
paper. A zero client update has no direction, so it gets trust 0; if every score is 0 the aggregate is
the zero update.
"""

from __future__ import annotations

import torch

from strategies.aggregation_result import Aggregate, check_updates, check_vector, weighted_mean


def trust_scores(updates: torch.Tensor, server_update: torch.Tensor) -> torch.Tensor:
    """TS_i = ReLU(cos(g_i, g_0)) in float64 (0 for a zero g_i); ``server_update`` must be nonzero."""
    x = check_updates(updates)
    g0 = check_vector(server_update, x.shape[1], x.device, "server_update")
    g0_norm = torch.linalg.vector_norm(g0)
    if not float(g0_norm) > 0:
        raise ValueError("server_update is the zero vector, so the cosine trust scores are undefined")
    norms = torch.linalg.vector_norm(x, dim=1)
    cos = (x @ g0) / (torch.where(norms > 0, norms, torch.ones_like(norms)) * g0_norm)
    return torch.relu(cos.clamp(max=1.0))


def fltrust(updates: torch.Tensor, server_update: torch.Tensor) -> Aggregate:
    """FLTrust aggregate of ``updates`` (n, d) against the server's root-data update ``server_update`` (d,).

    ``weights`` in the result are TS_i / sum_j TS_j (all zeros when no client is trusted).
    """
    scores = trust_scores(updates, server_update)
    x = updates.double()
    g0_norm = torch.linalg.vector_norm(server_update.to(device=x.device, dtype=torch.float64))
    norms = torch.linalg.vector_norm(x, dim=1)
    # Rows with zero norm have trust 0, so any finite scale works for them.
    rescaled = x * (g0_norm / torch.where(norms > 0, norms, torch.ones_like(norms))).unsqueeze(1)
    mean, w = weighted_mean(rescaled, scores)
    return Aggregate(update=mean.to(updates.dtype), weights=w)


# ---- registration (the Flower side is fl_sim.server.aggregation) ----

from pydantic import Field  # noqa: E402

from fl_sim.clients.local_training import cross_entropy_loss, steps_per_epoch, train_steps  # noqa: E402
from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    ServerKnowledge,
    TensorDefense,
)
from fl_sim.server.updates import flatten_update  # noqa: E402


class FLTrustParams(NoParams):
    """How long the server trains on its root set."""

    root_epochs: int | None = Field(
        None, ge=1, description="epochs over the root set for the server update (default: training.epochs)"
    )


def server_update(server: ServerKnowledge, r: RoundInput, epochs: int) -> torch.Tensor:
    """g_0: the server trains the global model on its root set as an honest client would, and takes the difference.

    The root set is the server's calibration set, never given to clients.
    """
    root = server.calibration
    model = server.model_at(r.reference, torch.zeros(r.updates.shape[1]), r.keys)
    steps = epochs * steps_per_epoch(len(root), server.training.batch_size)
    train_steps(
        model, root, cross_entropy_loss, server.training, steps, server.generator("fltrust", r.server_round), server.device
    )
    trained = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return flatten_update(trained, r.reference, r.keys).to(r.updates.device)


@STRATEGIES.register(
    "fltrust", "FLTrust: trust = ReLU(cos) to the server's root-data update, magnitudes normalised (Cao et al. 2021)"
)
class FLTrustDefense(TensorDefense[FLTrustParams]):
    """FLTrust against the server's own root-data update."""

    Params = FLTrustParams

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Trust-weighted, norm-normalised mean."""
        epochs = self.params.root_epochs or self.knowledge.training.epochs
        return fltrust(r.updates, server_update(self.knowledge, r, epochs))
