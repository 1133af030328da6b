"""What happened in one round, typed.

The adapter's log (:class:`RoundLog`) and the record the loop writes to the history, results.json and the report (:class:`RoundRecord`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

REJECTED, DOWNWEIGHTED, KEPT = "rejected", "down-weighted", "kept"


@dataclass
class RoundLog:
    """The server's view of one round, filled in by ``FederatedStrategy`` as the round goes."""

    cohort: list[int] = field(default_factory=list)
    replied: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # failed client -> the first line of its error
    timed_out: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)  # by the reply screen: client -> reason
    capped: dict[int, list[float]] = field(default_factory=dict)  # client -> [reported, capped] example count
    norm_ratio: dict[int, float | None] = field(default_factory=dict)
    weights: dict[int, float] | None = None  # the rule's per-client weights; None: it makes no per-client decision
    scores: dict[int, float] = field(default_factory=dict)
    clipped: list[int] = field(default_factory=list)
    aggregate_rejected: bool = False


def round_decisions(replied: list[int], screened_out: list[int], weights: dict[int, float] | None) -> dict[int, str]:
    """Per replying client: rejected, down-weighted or kept.

    Without ``weights`` (a rule that makes no per-client decision, e.g. a coordinate-wise median)
    only the screen decides. Down-weighted: a weight below half the equal share of the kept replies.
    """
    out = {p: REJECTED for p in screened_out}
    ruled = [p for p in replied if p not in out]
    for p in ruled:
        w = None if weights is None else weights.get(p)
        if w is None:
            out[p] = KEPT
        elif w <= 0:
            out[p] = REJECTED
        elif w < 0.5 / len(ruled):
            out[p] = DOWNWEIGHTED
        else:
            out[p] = KEPT
    return out


@dataclass(frozen=True)
class RoundRecord:
    """One entry of a run's history (round 0 is the initial model); ``to_json`` is its results.json form."""

    round: int
    elapsed_s: float  # since the rounds started (or resumed)
    memory_mb: float | None  # this process and its children (the local Ray instance's actors too)
    cohort: list[int]
    replied: list[int]
    failed: list[int]
    errors: dict[str, str]
    timed_out: list[int]
    dropped: list[int]
    rejected: dict[str, str]
    capped_counts: dict[str, list[float]]
    update_norm_ratio: dict[str, float | None]
    rule_weights: dict[str, float]
    rule_scores: dict[str, float]
    decisions: dict[str, str]
    malicious_in_cohort: list[int]
    malicious_sampled: dict[str, bool]
    attack_active: bool
    integer_hit_rate: dict[str, float] | None  # attack rounds: share of the aggregate's integers on the colluders' target
    fp32_accuracy: float | None
    precisions: dict[str, dict[str, float]]
    # omniscient qat_rounding's rounds: wanted / kept / landed flips, collateral integers, budget (exact_rounding)
    placement: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        server_round: int,
        log: RoundLog,
        malicious: set[int],
        attack_active: bool,
        precisions: dict[str, dict[str, float]],
        elapsed_s: float,
        memory_mb: float | None,
        hits: dict[str, float] | None = None,
        placement: dict[str, float] | None = None,
    ) -> RoundRecord:
        """The record of ``server_round`` from the server's log and the harness's ground truth."""
        return cls(
            round=server_round,
            elapsed_s=elapsed_s,
            memory_mb=memory_mb,
            cohort=log.cohort,
            replied=log.replied,
            failed=log.failed,
            errors=log.errors,
            timed_out=log.timed_out,
            dropped=log.dropped,
            rejected={str(k): v for k, v in log.rejected.items()},
            capped_counts={str(k): v for k, v in log.capped.items()},
            update_norm_ratio={str(k): v for k, v in log.norm_ratio.items()},
            rule_weights={str(k): v for k, v in (log.weights or {}).items()},
            rule_scores={str(k): v for k, v in log.scores.items()},
            decisions={str(k): v for k, v in round_decisions(log.replied, list(log.rejected), log.weights).items()},
            malicious_in_cohort=sorted(malicious.intersection(log.cohort)),
            malicious_sampled={str(i): i in log.cohort for i in sorted(malicious)},
            attack_active=attack_active,
            integer_hit_rate=hits,
            fp32_accuracy=precisions["fp32"]["accuracy"] if "fp32" in precisions else None,
            precisions=precisions,
            placement=dict(placement or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The results.json form (key order as written)."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RoundRecord:
        """A record read back from a checkpoint or results.json."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def with_precisions(self, precisions: dict[str, dict[str, float]]) -> RoundRecord:
        """Return the record with the per-precision metrics replaced (the final round shows every precision)."""
        return RoundRecord(**{**asdict(self), "precisions": precisions})
