"""Injected client faults (``federation.faults``): a seeded draw per (round, client)."""

from __future__ import annotations

import time

from fl_sim.config.schema import FaultKind, Scenario
from fl_sim.seeding import numpy_rng


class InjectedFault(RuntimeError):
    """A failure the scenario asked for."""


def fault_for(s: Scenario, server_round: int, partition_id: int) -> FaultKind | None:
    """The fault drawn for client ``partition_id`` in ``server_round``, or None.

    With probability ``federation.faults.rate`` (a seeded draw per (round, client)) the client gets
    the scenario's fault kind; a zero rate draws nothing.
    """
    f = s.federation.faults
    if f.rate <= 0:
        return None
    return f.kind if numpy_rng(s.seed, "fault", server_round, partition_id).random() < f.rate else None


def is_dropped(s: Scenario, server_round: int, partition_id: int) -> bool:
    """Whether the reply of client ``partition_id`` in ``server_round`` is lost (a drawn ``drop`` fault)."""
    return fault_for(s, server_round, partition_id) is FaultKind.DROP


def maybe_fail(s: Scenario, server_round: int, partition_id: int) -> None:
    """Raise (exception) or stall past the round timeout (timeout), if this client is drawn.

    A dropped reply is lost at the server's door instead: ``is_dropped``.
    """
    kind = fault_for(s, server_round, partition_id)
    if kind is FaultKind.EXCEPTION:
        raise InjectedFault(f"injected fault: client {partition_id} fails in round {server_round}")
    if kind is FaultKind.TIMEOUT:
        time.sleep(s.federation.round_timeout_s + 1.0)
