"""The input checks and small tensor helpers the robust aggregators in ``strategies/`` share.

Every aggregator is a pure function of a stacked (n, d) tensor of client updates (client model minus
global model, flattened) and, where its paper uses them, (n,) nonnegative example counts. It returns an
:class:`~fl_sim.server.aggregation.Aggregate` (the interface module); the maths runs in float64 on the
input's device and the update comes back in the input's dtype.
"""

from __future__ import annotations

import torch

from fl_sim.server.aggregation import Aggregate

__all__ = [
    "Aggregate",
    "check_updates",
    "check_vector",
    "check_weights",
    "cosine_similarity",
    "gaussian_noise",
    "median",
    "refuse_f_at_least_n",
    "weighted_mean",
]


def check_updates(updates: torch.Tensor) -> torch.Tensor:
    """Validate the (n, d) stack of updates (n, d >= 1, floating, finite) and return it as float64."""
    if not isinstance(updates, torch.Tensor):
        raise TypeError(f"updates must be a torch.Tensor, got {type(updates).__name__}")
    if updates.dim() != 2 or updates.shape[0] < 1 or updates.shape[1] < 1:
        raise ValueError(f"updates must be a 2-D (n, d) tensor with n, d >= 1, got shape {tuple(updates.shape)}")
    if not updates.is_floating_point():
        raise TypeError(f"updates must have a floating dtype, got {updates.dtype}")
    bad = (~torch.isfinite(updates)).any(dim=1).nonzero().flatten()
    if bad.numel():
        raise ValueError(f"updates of clients {bad.tolist()} contain NaN or infinite values")
    return updates.double()


def check_weights(weights: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """Validate (n,) nonnegative, finite weights with a positive sum; return them as float64 on ``device``."""
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) to match updates, got {tuple(weights.shape)}")
    w = weights.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights must be finite and >= 0, got {weights.tolist()}")
    if not float(w.sum()) > 0:
        raise ValueError(f"weights must have a positive sum, got {weights.tolist()}")
    return w


def check_vector(vector: torch.Tensor, d: int, device: torch.device, name: str) -> torch.Tensor:
    """Validate a finite (d,) tensor named ``name``; return it as float64 on ``device``."""
    if not isinstance(vector, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(vector).__name__}")
    if vector.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},) to match updates, got {tuple(vector.shape)}")
    v = vector.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def weighted_mean(x: torch.Tensor, w: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the rows of ``x`` kept by the bool mask ``keep`` (all if None), weighted by ``w``.

    Returns (mean, normalized weights with 0 for dropped rows); a zero mean and all-zero weights when
    the kept rows carry no weight.

    Parameters
    ----------
    x : torch.Tensor
        (n, d) rows to average.
    w : torch.Tensor
        (n,) nonnegative weights, not necessarily normalized.
    keep : torch.Tensor or None
        (n,) bool mask of the rows that count; None keeps every row.

    Returns
    -------
    tuple of torch.Tensor
        The (d,) weighted mean and the (n,) weights normalized to sum 1 (0 for dropped rows).
    """
    w = w if keep is None else torch.where(keep, w, torch.zeros_like(w))
    total = w.sum()
    if not float(total) > 0:
        return torch.zeros_like(x[0]), torch.zeros_like(w)
    w = w / total
    return w @ x, w


def median(values: torch.Tensor) -> torch.Tensor:
    """Return the median of a 1-D tensor, averaging the two middle values when the count is even (numpy's)."""
    return torch.quantile(values, 0.5)


def cosine_similarity(x: torch.Tensor) -> torch.Tensor:
    """(n, n) pairwise cosine similarities of the rows of ``x``.

    A zero row has similarity 0 with every row, itself included (sklearn's convention), since its
    direction is undefined.
    """
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    unit = x / torch.where(norms > 0, norms, torch.ones_like(norms))
    return (unit @ unit.T).clamp(-1.0, 1.0)


def gaussian_noise(d: int, std: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Draw N(0, std^2 I_d) noise in float64 on ``device``.

    It is drawn on the generator's device, so one seed gives the same noise whatever device the
    updates are on.

    Parameters
    ----------
    d : int
        Dimension of the noise vector.
    std : float
        Standard deviation; 0 returns zeros without touching ``generator``.
    generator : torch.Generator or None
        The seeded source of the draw; required (ValueError otherwise) when ``std`` is nonzero.
    device : torch.device
        Where the returned (d,) tensor lives.
    """
    if std == 0:
        return torch.zeros(d, dtype=torch.float64, device=device)
    if generator is None:
        raise ValueError(f"a torch.Generator is needed to draw noise of std {std}; pass a seeded one")
    return std * torch.randn(d, generator=generator, dtype=torch.float64, device=generator.device).to(device)


def refuse_f_at_least_n(assumed_f: int | None, n: int) -> None:
    """Raise ValueError when the assumed number of attackers f leaves no update to trust (f >= n)."""
    if assumed_f is not None and assumed_f >= n:
        raise ValueError(f"needs fewer attackers than the {n} updates of a round, got f={assumed_f}")
