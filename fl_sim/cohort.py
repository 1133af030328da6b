"""Who is malicious and who trains in each round: pure functions of the scenario seed.

Flower's own sampling uses Python's global ``random``; fl_sim replaces it with these, so that
roles and per-round cohorts are reproducible and identical on server and clients.
"""

from __future__ import annotations

import math

from fl_sim.seeding import numpy_rng


def malicious_ids(seed: int, num_clients: int, num_malicious: int) -> list[int]:
    """The partition ids of the colluders (sorted)."""
    if not 0 <= num_malicious <= num_clients:
        raise ValueError(f"num_malicious {num_malicious} must be in 0..{num_clients}")
    perm = numpy_rng(seed, "roles").permutation(num_clients)
    return sorted(int(i) for i in perm[:num_malicious])


def cohort_size(num_clients: int, fraction: float, minimum: int) -> int:
    """How many clients train per round: max(floor(fraction * n), minimum), capped at n."""
    return min(num_clients, max(int(math.floor(num_clients * fraction + 1e-9)), minimum))


def sample_cohort(seed: int, server_round: int, num_clients: int, size: int) -> list[int]:
    """The partition ids that train in ``server_round`` (sorted)."""
    if size >= num_clients:
        return list(range(num_clients))
    picked = numpy_rng(seed, "cohort", server_round).choice(num_clients, size=size, replace=False)
    return sorted(int(i) for i in picked)
