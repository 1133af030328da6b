"""When the colluders attack: a pure function of the attack section, the round and the seed."""

from __future__ import annotations

from fl_sim.config.schema import AttackConfig
from fl_sim.seeding import numpy_rng


def attack_active(attack: AttackConfig, server_round: int, seed: int) -> bool:
    """Whether the colluders attack in ``server_round``.

    Inside [start_round, stop_round], on every ``every``-th round from start_round, and with
    ``probability`` (a seeded draw per round, independent of the rounds asked before).
    """
    if attack.num_malicious == 0 or server_round < attack.start_round:
        return False
    if attack.stop_round is not None and server_round > attack.stop_round:
        return False
    if (server_round - attack.start_round) % attack.every:
        return False
    if attack.probability >= 1.0:
        return True
    return bool(numpy_rng(seed, "attack-schedule", server_round).random() < attack.probability)
