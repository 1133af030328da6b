"""The server's round loop on a Flower Grid.

Discover which node holds which partition, run the strategy with controlled sampling (the colluders' server-side adversary, if any, rewrites their
replies first), evaluate the global model centrally each round.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fl_sim.clients.plan import AttackPlan
from fl_sim.clients.schedule import attack_active
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.memory import tree_rss_mb
from fl_sim.models import build_model
from fl_sim.seeding import derive_seed
from fl_sim.server.adversary import Adversary, Workbench, build_adversary
from fl_sim.server.aggregation import PARTITION_KEY, DefensePlan, FederatedStrategy
from fl_sim.server.attack_trace import hit_rates, strip_targets
from fl_sim.server.build import build_strategy
from fl_sim.server.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fl_sim.server.round_record import RoundRecord
from fl_sim.server.routing import execution_nodes

State = dict[str, torch.Tensor]


# (global model, precision names) -> per-precision round metrics: the evaluation stage, handed in by the runner
RoundEvaluator = Callable[[torch.nn.Module, list[str]], dict[str, dict[str, float]]]


@dataclass
class FederationOutcome:
    """The federation's result: the final global model and one record per round (0 = the initial model)."""

    final_state: State
    history: list[RoundRecord] = field(default_factory=list)


def initial_model(s: Scenario, data: FederatedData) -> torch.nn.Module:
    """The global model at round 0, seeded from the scenario (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(s.seed, "init"))
        return build_model(s.model.name, data.num_classes, data.input_shape, s.model.pretrained)


NODE_WAIT_S = 120.0  # how long a run waits for its first Flower node before giving up


class NoNodes(RuntimeError):
    """No Flower node connected to run the clients on."""


def wait_for_nodes(grid: Grid, wanted: int, timeout: float | None = None, settle: float = 5.0) -> list[int]:
    """The connected node ids, once ``wanted`` nodes are there or the count has not changed for ``settle`` seconds.

    ``NoNodes`` (one line, naming the fix) when no node connects within ``timeout`` seconds: a run
    never waits silently for nodes that are not coming.
    """
    timeout = NODE_WAIT_S if timeout is None else timeout
    start = last_change = time.monotonic()
    seen = -1
    while True:
        ids = list(grid.get_node_ids())
        now = time.monotonic()
        if len(ids) != seen:
            seen, last_change = len(ids), now
        if len(ids) >= wanted or (ids and now - last_change >= settle):
            return ids
        if not ids and now - start > timeout:
            raise NoNodes(
                f"no Flower node connected within {timeout:.0f}s; the scenario needs at least 1 (ideally {wanted}, "
                "one per client of a round): start SuperNodes or raise the federation's num-supernodes"
            )
        time.sleep(0.05)


def discover_partitions(grid: Grid, wanted: int, timeout: float | None = None, settle: float = 5.0) -> dict[int, int]:
    """Map each node's partition index to its node id.

    Wait for the nodes (``wait_for_nodes``), ask every connected node for its index (its
    ``partition-id``: with a node per client, the client; with fewer nodes, a slot that runs the
    round's clients in turn); return index -> node id. The indices must be 0..M-1 for the M nodes.
    """
    ids = wait_for_nodes(grid, wanted, timeout, settle)
    if len(ids) < wanted:
        _progress(f"fl-sim: {len(ids)} Flower nodes for {wanted} clients per round: each node runs its share in turn")
    msgs = [Message(RecordDict({"config": ConfigRecord({})}), message_type=MessageType.QUERY, dst_node_id=i) for i in ids]
    node_of: dict[int, int] = {}
    for reply in grid.send_and_receive(msgs, timeout=NODE_WAIT_S if timeout is None else timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} failed to report its partition: {reply.error.reason}")
        info = cast(MetricRecord, reply.content["info"])
        node_of[int(cast(int, info[PARTITION_KEY]))] = reply.metadata.src_node_id
    if sorted(node_of) != list(range(len(ids))):
        raise RuntimeError(f"the {len(ids)} nodes reported indices {sorted(node_of)[:10]}..., expected 0..{len(ids) - 1}")
    return node_of


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _show(record: RoundRecord, rounds: int, elapsed: float) -> list[str]:
    """The progress lines of one round."""
    shown = "  ".join(f"{k} acc {v['accuracy']:.3f} asr {v['backdoor_asr']:.3f}" for k, v in record.precisions.items())
    failed = f"  FAILED clients {record.failed}" if record.failed else ""
    failed += f"  TIMED OUT clients {record.timed_out}" if record.timed_out else ""
    failed += f"  DROPPED replies of {record.dropped}" if record.dropped else ""
    failed += f"  REJECTED clients {sorted(int(p) for p in record.rejected)}" if record.rejected else ""
    lines = [f"[round {record.round:>3}/{rounds}] {shown}{failed}  ({elapsed:.1f}s)"]
    return lines + [f"    client {pid} failed: {reason}" for pid, reason in record.errors.items()]


@dataclass
class _Federation:
    """One run's moving parts: the strategy (the server's view), the adversary and the ground truth."""

    grid: Grid
    s: Scenario
    strategy: FederatedStrategy
    adversary: Adversary | None
    attack: AttackPlan
    model: torch.nn.Module
    evaluate_round: RoundEvaluator
    outcome: FederationOutcome
    progress: Callable[[str], None]
    t0: float = field(default_factory=time.monotonic)

    def evaluate(self, server_round: int, hits: dict[str, float] | None = None) -> None:
        """Evaluate the global model, append the round's record, print its progress lines."""
        s, every = self.s, self.s.evaluation.every_n_rounds
        want = s.evaluation.precisions if every and server_round % every == 0 else ["fp32"]
        active = server_round > 0 and attack_active(s.attack, server_round, s.seed)
        metrics = self.evaluate_round(self.model, want)
        log = self.strategy.log(server_round)
        elapsed = time.monotonic() - self.t0
        placement = self.adversary.placement.get(server_round, {}) if self.adversary is not None else {}
        record = RoundRecord.build(
            server_round, log, set(self.attack.malicious), active, metrics, elapsed, tree_rss_mb(), hits, placement
        )
        self.outcome.history.append(record)
        for line in _show(record, s.federation.rounds, time.monotonic() - self.t0):
            self.progress(line)

    def play(self, rnd: int) -> dict[str, float] | None:
        """One round: train, (adversary,) screen and aggregate; the aggregate's integer hit rates, if any."""
        arrays = ArrayRecord(self.model.state_dict())
        messages = self.strategy.configure_train(rnd, arrays, ConfigRecord(), self.grid)
        replies = self.grid.send_and_receive(messages, timeout=self.s.federation.round_timeout_s)
        replies = self.strategy.lose_in_transit(rnd, replies)
        targets = strip_targets(replies)  # the colluders' aim: the harness's record, never the server's
        if self.adversary is not None:
            replies = self.adversary.intercept(rnd, replies, self.model.state_dict())
        aggregated, _ = self.strategy.aggregate_train(rnd, replies)
        if aggregated is not None:
            self.model.load_state_dict(aggregated.to_torch_state_dict())
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        hits = hit_rates(state, targets, self.attack.params, self.model)
        placed = self.adversary.placement.get(rnd) if self.adversary is not None else None
        if placed:
            self.progress(
                f"    exact placement: {placed['landed']:.0f} of {placed['wanted']:.0f} wanted flips landed "
                f"({placed['kept']:.0f} placed, {placed.get('reachable', float('nan')):.0f} reachable, "
                f"{placed['collateral']:.0f} other integers changed)"
            )
        if hits:
            shown = "  ".join(f"{k} {100 * v:.2f}%" for k, v in hits.items())
            self.progress(f"    integer hit rate of the aggregate on the colluders' target: {shown}")
        return hits


def run_rounds(
    grid: Grid,
    s: Scenario,
    defense: DefensePlan,
    attack: AttackPlan,
    data: FederatedData,
    evaluate_round: RoundEvaluator,
    checkpoint_dir: Path | None = None,
    progress: Callable[[str], None] = _progress,
) -> FederationOutcome:
    """Run the rounds, driving the strategy's hooks directly (so that a run can resume at any round).

    The global model is evaluated centrally after each round (``evaluate_round``: FP32, or every
    precision every ``evaluation.every_n_rounds``) and checkpointed if ``checkpoint_dir`` is given.
    The strategy sees only what a server knows; the adversary (the colluders' coordinator) and the
    round records hold the ground truth.
    """
    model = initial_model(s, data)
    node_of = discover_partitions(grid, execution_nodes(s))
    strategy = build_strategy(s, defense, data, node_of)
    bench = Workbench(
        build_model(s.model.name, data.num_classes, data.input_shape, s.model.pretrained), data, torch.device("cpu")
    )
    adversary = build_adversary(s, attack, strategy.pid_for, bench)  # reads the strategy's routing
    ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    outcome = FederationOutcome(final_state=model.state_dict(), history=list(ckpt.history) if ckpt else [])
    if ckpt is not None:
        model.load_state_dict(ckpt.state)
        progress(f"[resume] continuing after round {ckpt.round}")
    fed = _Federation(grid, s, strategy, adversary, attack, model, evaluate_round, outcome, progress)
    if ckpt is None:
        fed.evaluate(0)
    for rnd in range(1 if ckpt is None else ckpt.round + 1, s.federation.rounds + 1):
        fed.evaluate(rnd, fed.play(rnd))
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, Checkpoint(rnd, model.state_dict(), outcome.history))
    outcome.final_state = model.state_dict()
    return outcome
