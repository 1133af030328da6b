"""Detection quality of a defense (pure).

From each round's decisions (the server's reply screen and
the strategy's per-client weights) and the ground truth of who is malicious.

A reply is *flagged* when it was rejected (by the screen, or given weight 0 by the rule) or
down-weighted (a weight below half the equal share 1/n of the round's kept replies). TPR counts
flagged malicious replies in attack rounds over all malicious replies in attack rounds; FPR counts
flagged honest replies over all honest replies, in every round. ``malicious_norm_ratio`` is the mean
update norm (over the round's median) of the malicious replies in attack rounds: how loud the attack is.
"""

from __future__ import annotations

from typing import Any

from fl_sim.server.round_record import DOWNWEIGHTED, KEPT, REJECTED, round_decisions

__all__ = ["DOWNWEIGHTED", "KEPT", "REJECTED", "detection_rates", "round_decisions"]


def detection_rates(history: list[dict[str, Any]], malicious: set[int]) -> dict[str, Any]:
    """TPR / FPR over a run's history entries (each with ``decisions`` and ``attack_active``)."""
    tp = pos = fp = neg = 0
    rule_decides = False
    ratios: list[float] = []
    for h in history:
        if h.get("attack_active"):
            norms = h.get("update_norm_ratio") or {}
            ratios += [float(v) for p, v in norms.items() if int(p) in malicious and v is not None]
        decisions = {int(p): d for p, d in h.get("decisions", {}).items()}
        rule_decides = rule_decides or bool(h.get("rule_weights"))
        for p, d in decisions.items():
            flagged = d != KEPT
            if p in malicious:
                if h.get("attack_active"):
                    pos += 1
                    tp += flagged
            else:
                neg += 1
                fp += flagged
    return {
        "tpr": tp / pos if pos else None,
        "fpr": fp / neg if neg else None,
        "malicious_replies": pos,
        "flagged_malicious": tp,
        "honest_replies": neg,
        "flagged_honest": fp,
        "rule_decides": rule_decides,
        "malicious_norm_ratio": sum(ratios) / len(ratios) if ratios else None,
    }
