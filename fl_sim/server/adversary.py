"""The server-side adversary: the colluders' coordinator.

The server-side adversary: the colluders' coordinator, standing between the clients' replies and
the server. In an attack round it reads the replies, splits colluders from honest clients by the
ground truth (which it alone holds: the strategy only ever sees the rewritten replies), and rewrites
the colluders' updates:

- crafted attacks (ALIE, IPM, Min-Max, ...): ``craft`` from the benign updates the colluders know;
- any other attack under omniscient collusion: the colluders' trained model is the target of the
  FedAvg aggregate, solved exactly against the round's honest updates (``steer_aggregate``);
- ``attack.stealth``: the result bounded in norm / distance against the known benign updates;
- an ``ExactPlacer`` (``qat_rounding``) under omniscient collusion: the colluders' replies carry the
  rounding they want, placed on the round's real honest updates (``exact_rounding``), its figures
  kept for the round's record (``placement``).

What the colluders know: omniscient -> the round's honest updates; aggregation_aware -> their own
honest updates; independent -> each its own honest update only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from torch import nn

from fl_sim.clients.collusion import stealth_bound, steer_aggregate
from fl_sim.clients.crafted import CraftContext, Crafted
from fl_sim.clients.exact_rounding import Aggregate, ExactPlacer, KnownRound
from fl_sim.clients.plan import AttackPlan
from fl_sim.clients.registry import Behaviour
from fl_sim.clients.repair import quantized_weight_names
from fl_sim.clients.runtime import context_for
from fl_sim.clients.schedule import attack_active
from fl_sim.config.schema import Collusion, Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.rule_replicas import has_replica, simulate
from fl_sim.seeding import derive_seed, torch_generator
from fl_sim.server.updates import State, flatten_update, float_keys, unflatten_update

ARRAYS, METRICS, COUNT = "arrays", "metrics", "num-examples"


@dataclass(frozen=True)
class Workbench:
    """What the colluders' coordinator learns with when it attacks on the real round (omniscient ``ExactPlacer``)."""

    model: nn.Module  # a model of the scenario's architecture (its weights are overwritten)
    data: FederatedData  # the federation's partitions (the coordinator pools the colluders' own)
    device: torch.device


@dataclass(frozen=True)
class Reply:
    """One reply as the adversary sees it: sender, flat update, example count."""

    pid: int
    update: torch.Tensor
    count: float


def rewrite_updates(
    behaviour: Behaviour, collusion: Collusion, honest: list[Reply], colluders: list[Reply], s: Scenario, server_round: int
) -> list[torch.Tensor]:
    """The colluders' new updates, in the order of ``colluders`` (pure maths on flat updates)."""
    own = torch.stack([r.update for r in colluders])
    benign = torch.stack([r.update for r in honest]) if honest else own[:0]

    def known_for(i: int) -> torch.Tensor:
        if collusion is Collusion.OMNISCIENT and len(benign):
            return benign
        return own if collusion is not Collusion.INDEPENDENT else own[i : i + 1]

    out: list[torch.Tensor] = []
    gen = torch_generator(s.seed, "adversary", server_round)
    ctx = CraftContext(
        num_replies=len(honest) + len(colluders),
        num_colluders=len(colluders),
        generator=gen,
        rule=s.strategy.spec,
        full_knowledge=collusion is Collusion.OMNISCIENT and len(benign) > 0,
    )
    for i, r in enumerate(colluders):
        known = known_for(i)
        if isinstance(behaviour, Crafted):
            u = behaviour.craft(known, ctx)
        elif collusion is Collusion.OMNISCIENT:
            weights = torch.tensor([h.count for h in honest], dtype=torch.float64)
            u = steer_aggregate(benign, weights, sum(c.count for c in colluders), own.mean(0))
        else:
            u = r.update
        st = s.attack.stealth
        if st.enabled:
            u = stealth_bound(u, known, st.max_norm_ratio, st.max_distance_ratio)
        out.append(u.to(r.update.dtype))
    return out


class Adversary:
    """Rewrites the colluders' replies of each attack round before the server screens them."""

    def __init__(
        self, s: Scenario, attack: AttackPlan, pid_for: Callable[[Message], int], bench: Workbench | None = None
    ) -> None:
        self.s, self.pid_for = s, pid_for
        self.bad = set(attack.malicious)
        self.malicious = attack.malicious
        self.behaviour = attack.make()
        self.bench = bench  # what an ExactPlacer learns with (the model, the colluders' data)
        self.placement: dict[int, dict[str, float]] = {}  # per round: what an exact placement achieved

    def rewrite_states(self, server_round: int, replies: list[tuple[int, State, float]], reference: State) -> dict[int, State]:
        """Rewrite the colluders' states of one round.

        The colluders' new states by partition id, from the round's (partition id, state,
        example count) replies; empty outside attack rounds or when no colluder replied.
        """
        if not attack_active(self.s.attack, server_round, self.s.seed):
            return {}
        reference = {k: v.detach().cpu() for k, v in reference.items()}  # the global model may sit on the GPU
        keys = float_keys(reference)
        honest: list[Reply] = []
        colluders: list[Reply] = []
        for pid, state, count in sorted(replies, key=lambda r: r[0]):  # arrival order must not matter
            reply = Reply(pid, flatten_update(state, reference, keys), count)
            (colluders if pid in self.bad else honest).append(reply)
        if not colluders:
            return {}
        if isinstance(self.behaviour, ExactPlacer) and self.s.attack.collusion is Collusion.OMNISCIENT and honest:
            if self.bench is None:
                raise RuntimeError(f"{self.s.attack.behaviour} under omniscient collusion needs the adversary's workbench")
            return self._place(server_round, replies, reference, keys, self.bench)
        updates = rewrite_updates(self.behaviour, self.s.attack.collusion, honest, colluders, self.s, server_round)
        return {r.pid: unflatten_update(u, reference, keys) for r, u in zip(colluders, updates)}

    def _place(
        self, server_round: int, replies: list[tuple[int, State, float]], reference: State, keys: list[str], bench: Workbench
    ) -> dict[int, State]:
        """Omniscient ``ExactPlacer``: one submission for every colluder, learned and placed on the real honest updates."""
        placer = cast(ExactPlacer, self.behaviour)
        ordered = sorted(replies, key=lambda r: r[0])
        honest = [(_floats(st, keys), c) for pid, st, c in ordered if pid not in self.bad]
        colluders = [(pid, _floats(st, keys), c) for pid, st, c in ordered if pid in self.bad]
        ref = _floats(reference, keys)
        counts = [c for _, c in honest]
        k, colluder_count = len(colluders), sum(c for _, _, c in colluders) / len(colluders)
        spec = placer.rule_spec(self.s.strategy.spec)
        gen = torch_generator(self.s.seed, "adversary", server_round)
        replica = _replica_of(spec, [m for m, _ in honest], counts + [colluder_count] * k, ref, k, gen)
        names = quantized_weight_names(bench.model)
        known = KnownRound(ref, [m for m, _ in honest], counts, k, colluder_count, names, replica)
        cohort = sorted(pid for pid, _, _ in replies)
        ctx = context_for(self.s, self.malicious, bench.data, colluders[0][0], server_round, cohort, bench.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.s.seed, "adversary-global", server_round))
            placed = placer.place_exactly(known, bench.model, ctx)
        self.placement[server_round] = placed.metrics()
        sent = {
            key: placed.submission[key].to(v.dtype) if key in placed.submission else v.clone() for key, v in reference.items()
        }
        return {pid: {key: v.clone() for key, v in sent.items()} for pid, _, _ in colluders}

    def intercept(self, server_round: int, replies: list[Message], reference: State) -> list[Message]:
        """Flower glue: rewrite the colluders' reply messages in place (failed replies are left alone)."""
        ok, decoded = [], []
        for m in replies:
            entry = None if m.has_error() else _decode(m, self.pid_for)
            if entry is not None:
                ok.append(m)
                decoded.append(entry)
        new = self.rewrite_states(server_round, decoded, reference)
        for m, (pid, _, _) in zip(ok, decoded):
            if pid in new:
                m.content = RecordDict({ARRAYS: ArrayRecord(new[pid]), METRICS: m.content[METRICS]})
        return replies


def _replica_of(
    spec: str, honest: list[State], counts: list[float], reference: State, k: int, gen: torch.Generator
) -> Aggregate | None:
    """Rule ``spec``'s aggregate (its replica) as a function of the k colluders' common submission; None: no replica."""
    if not has_replica(spec):
        return None
    weights, keys, f64 = torch.tensor(counts, dtype=torch.float64), list(reference), torch.float64
    base = torch.stack([flatten_update(m, reference, keys, f64) for m in honest])

    def aggregate(c: State) -> State:
        x = torch.cat([base, flatten_update(c, reference, keys, f64).expand(k, -1)])
        return unflatten_update(simulate(spec, x, k, gen, weights), reference, keys)

    return aggregate


def _floats(state: State, keys: list[str]) -> State:
    """The float entries of a state, in float64 on the CPU."""
    return {k: state[k].detach().cpu().double() for k in keys}


def _decode(m: Message, pid_for: Callable[[Message], int]) -> tuple[int, State, float] | None:
    """Decode one reply, or None.

    (partition id, state, example count) of a reply; None if it cannot be read (the server's
    screen deals with such replies).
    """
    try:
        arrays, metrics = cast(ArrayRecord, m.content[ARRAYS]), cast(MetricRecord, m.content[METRICS])
        return pid_for(m), arrays.to_torch_state_dict(), float(cast(float, metrics[COUNT]))
    except Exception:  # a malformed reply: anything can be wrong with it
        return None


def needs_adversary(s: Scenario, attack: AttackPlan) -> bool:
    """Whether any reply of ``s`` is rewritten server-side."""
    if not attack.malicious:
        return False
    return attack.behaviour.crafted or s.attack.collusion is Collusion.OMNISCIENT or s.attack.stealth.enabled


def build_adversary(
    s: Scenario, attack: AttackPlan, pid_for: Callable[[Message], int], bench: Workbench | None = None
) -> Adversary | None:
    """The adversary for ``s``, or None when none is needed.

    ``pid_for`` names the partition a reply comes from; pass the strategy's own (``pid_for``), which
    follows the round's routing.
    """
    return Adversary(s, attack, pid_for, bench) if needs_adversary(s, attack) else None
