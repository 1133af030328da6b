"""The server's round loop on a Flower Grid: discover which node holds which partition, run the
strategy with controlled sampling (the colluders' server-side adversary, if any, rewrites their
replies first), evaluate the global model centrally each round."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fl_sim.cohort import malicious_ids
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.evaluation.detection import round_decisions
from fl_sim.evaluation.precisions import evaluate_precisions, round_metrics
from fl_sim.memory import tree_rss_mb
from fl_sim.models import build_model
from fl_sim.seeding import derive_seed
from fl_sim.server.adversary import build_adversary
from fl_sim.server.attack_trace import hit_rates, strip_targets
from fl_sim.server.build import build_strategy
from fl_sim.server.controlled import PARTITION_KEY
from fl_sim.server.routing import execution_nodes
from fl_sim.server.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

State = dict[str, torch.Tensor]


@dataclass
class FederationOutcome:
    final_state: State
    history: list[dict[str, Any]] = field(default_factory=list)


def initial_model(s: Scenario, data: FederatedData) -> torch.nn.Module:
    """The global model at round 0, seeded from the scenario (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(s.seed, "init"))
        return build_model(s.model.name, data.num_classes, data.input_shape, s.model.pretrained)


def discover_partitions(grid: Grid, minimum: int, timeout: float = 600.0) -> dict[int, int]:
    """Wait for at least ``minimum`` nodes, ask every connected node for its index (its
    ``partition-id``: with a node per client, the client; with fewer nodes, a cohort slot);
    return index -> node id. The indices must be 0..M-1 for the M nodes."""
    deadline = time.monotonic() + timeout
    while len(ids := list(grid.get_node_ids())) < minimum:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ids)} of {minimum} client nodes connected within {timeout:.0f}s")
        time.sleep(0.05)
    msgs = [Message(RecordDict({"config": ConfigRecord({})}), message_type=MessageType.QUERY, dst_node_id=i) for i in ids]
    node_of: dict[int, int] = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} failed to report its partition: {reply.error.reason}")
        node_of[int(reply.content["info"][PARTITION_KEY])] = reply.metadata.src_node_id
    if sorted(node_of) != list(range(len(ids))):
        raise RuntimeError(f"the {len(ids)} nodes reported indices {sorted(node_of)[:10]}..., expected 0..{len(ids) - 1}")
    return node_of


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _history_entry(s: Scenario, server_round: int, log: dict[str, Any], bad: set[int], metrics: dict[str, Any],
                   elapsed: float, hits: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "round": server_round,
        "elapsed_s": elapsed,  # since the rounds started (or resumed)
        "memory_mb": tree_rss_mb(),  # this process and its children: the local Ray instance's actors too
        "cohort": log.get("cohort", []),
        "replied": log.get("replied", []),
        "failed": log.get("failed", []),
        "errors": log.get("errors", {}),  # failed client -> the first line of its error
        "timed_out": log.get("timed_out", []),
        "dropped": log.get("dropped", []),
        "rejected": log.get("rejected", {}),
        "capped_counts": log.get("capped", {}),
        "update_norm_ratio": {str(k): v for k, v in log.get("norm_ratio", {}).items()},
        "rule_weights": {str(k): v for k, v in log.get("weights", {}).items()},
        "rule_scores": {str(k): v for k, v in log.get("scores", {}).items()},
        "decisions": {str(k): v for k, v in round_decisions(
            log.get("replied", []), [int(p) for p in log.get("rejected", {})], log.get("weights")).items()},
        "malicious_in_cohort": sorted(bad.intersection(log.get("cohort", []))),
        "malicious_sampled": {str(i): i in log.get("cohort", []) for i in sorted(bad)},
        "attack_active": server_round > 0 and s.attack.num_malicious > 0 and s.attack.active(server_round, s.seed),
        "integer_hit_rate": hits,  # attack rounds: share of the aggregate's integers equal to the colluders' target
        "fp32_accuracy": metrics["fp32"]["accuracy"] if "fp32" in metrics else None,
        "precisions": round_metrics(metrics),
    }


def run_rounds(
    grid: Grid, s: Scenario, data: FederatedData, checkpoint_dir: Path | None = None,
    progress: Callable[[str], None] = _progress,
) -> FederationOutcome:
    """Run the rounds, driving the strategy's hooks directly (so that a run can resume at any
    round); evaluate centrally after each round; checkpoint after each round if asked."""
    model = initial_model(s, data)
    node_of = discover_partitions(grid, execution_nodes(s))
    strategy = build_strategy(s, node_of)
    # the colluders' server-side coordinator, if the attack has one (it reads the strategy's routing)
    adversary = build_adversary(s, strategy.fl_pid_of)
    bad = set(malicious_ids(s.seed, s.federation.num_clients, s.attack.num_malicious))
    every = s.evaluation.every_n_rounds
    ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    outcome = FederationOutcome(final_state=model.state_dict(), history=list(ckpt.history) if ckpt else [])
    if ckpt is not None:
        model.load_state_dict(ckpt.state)
        progress(f"[resume] continuing after round {ckpt.round}")
    t0 = time.monotonic()

    def evaluate(server_round: int, hits: dict[str, float] | None = None) -> None:
        want = s.evaluation.precisions if every and server_round % every == 0 else ["fp32"]
        metrics = evaluate_precisions(model, data, s.evaluation, s.attack, want)
        entry = _history_entry(s, server_round, strategy.fl_round_log.get(server_round, {}), bad, metrics,
                               time.monotonic() - t0, hits)
        outcome.history.append(entry)
        shown = "  ".join(f"{k} acc {v['accuracy']:.3f} asr {v['backdoor_asr']:.3f}" for k, v in entry["precisions"].items())
        failed = f"  FAILED clients {entry['failed']}" if entry["failed"] else ""
        failed += f"  TIMED OUT clients {entry['timed_out']}" if entry["timed_out"] else ""
        failed += f"  DROPPED replies of {entry['dropped']}" if entry["dropped"] else ""
        failed += f"  REJECTED clients {sorted(entry['rejected'])}" if entry["rejected"] else ""
        progress(f"[round {server_round:>3}/{s.federation.rounds}] {shown}{failed}  ({time.monotonic() - t0:.1f}s)")
        for pid, reason in entry["errors"].items():
            progress(f"    client {pid} failed: {reason}")

    first = 1 if ckpt is None else ckpt.round + 1
    if ckpt is None:
        evaluate(0)
    for rnd in range(first, s.federation.rounds + 1):
        arrays = ArrayRecord(model.state_dict())
        replies = grid.send_and_receive(strategy.configure_train(rnd, arrays, ConfigRecord(), grid), timeout=s.federation.round_timeout_s)
        replies = strategy.lose_in_transit(rnd, replies)
        targets = strip_targets(replies)  # the colluders' aim: the harness's record, never the server's
        if adversary is not None:
            replies = adversary.intercept(rnd, replies, model.state_dict())
        aggregated, _ = strategy.aggregate_train(rnd, replies)
        if aggregated is not None:
            model.load_state_dict(aggregated.to_torch_state_dict())
        hits = hit_rates({k: v.detach().cpu() for k, v in model.state_dict().items()}, targets, s, model)
        if hits:
            progress(f"    integer hit rate of the aggregate on the colluders' target: "
                     + "  ".join(f"{k} {100 * v:.2f}%" for k, v in hits.items()))
        evaluate(rnd, hits)
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, Checkpoint(rnd, model.state_dict(), outcome.history))
    outcome.final_state = model.state_dict()
    return outcome
