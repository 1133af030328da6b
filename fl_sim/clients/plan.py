"""What the clients of a run do, resolved once by the wiring step: the roles and each role's behaviour."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from fl_sim.clients.registry import Behaviour
from fl_sim.config.schema import Scenario


@dataclass(frozen=True)
class AttackPlan:
    """The colluders: who they are and the attack they run (its parameters validated once)."""

    malicious: tuple[int, ...]  # partition ids, sorted
    behaviour: type[Behaviour]
    params: BaseModel

    def make(self) -> Behaviour:
        """A fresh instance of the attack (behaviours may keep per-round state, e.g. their target)."""
        return self.behaviour(self.params)


@dataclass(frozen=True)
class ClientPlan:
    """Everything a client process needs to train any partition in any round."""

    scenario: Scenario
    attack: AttackPlan
    honest: type[Behaviour]
    honest_params: BaseModel
    cohort_size: int

    def behaviour_for(self, partition_id: int) -> Behaviour:
        """The colluders' attack for malicious partition ids, the honest behaviour otherwise."""
        if partition_id in self.attack.malicious:
            return self.attack.make()
        return self.honest(self.honest_params)
