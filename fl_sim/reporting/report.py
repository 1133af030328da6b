"""report.md: the tables a reader wants, from results.json's content."""

from __future__ import annotations

from typing import Any

from fl_sim.reporting.eval_report import evaluation_sections, pct, precisions_section


def final_table(final: dict[str, dict[str, Any]]) -> list[str]:
    """The final model's table: one row per precision."""
    return precisions_section(final)


def per_class_table(final: dict[str, dict[str, Any]]) -> list[str]:
    """Per-class accuracy: one row per class, one column per precision."""
    precisions = list(final)
    n = len(next(iter(final.values()))["per_class_accuracy"])
    rows = ["| class | " + " | ".join(precisions) + " |", "|---|" + "---:|" * len(precisions)]
    for c in range(n):
        rows.append(f"| {c} | " + " | ".join(pct(final[p]["per_class_accuracy"][c]) for p in precisions) + " |")
    return rows


def flagged(h: dict[str, Any]) -> str:
    """The clients a round's server did not keep as they were ("3 rejected, 5 down-weighted")."""
    return ", ".join(f"{p} {d}" for p, d in h.get("decisions", {}).items() if d != "kept")


def history_table(history: list[dict[str, Any]]) -> list[str]:
    """One row per round: clients, colluders sampled, attack, flags, FP32 accuracy and ASR."""
    rows = [
        "| round | clients | malicious in cohort | attack active | flagged | FP32 accuracy | FP32 ASR |",
        "|---:|---:|---|---|---|---:|---:|",
    ]
    for h in history:
        fp = h["precisions"].get("fp32", {})
        rows.append(
            f"| {h['round']} | {len(h['replied'])} | {h['malicious_in_cohort'] or '-'} | "
            f"{'yes' if h['attack_active'] else 'no'} | {flagged(h) or '-'} | {pct(fp.get('accuracy'))} | {pct(fp.get('backdoor_asr'))} |"
        )
    return rows


def detection_lines(d: dict[str, Any] | None) -> list[str]:
    """TPR / FPR of the server (reply screen + strategy) against the ground truth."""
    if not d:
        return ["n/a"]
    how = (
        "the strategy's per-client weights and the reply screen"
        if d["rule_decides"]
        else "the reply screen only (this strategy makes no per-client decision)"
    )
    return [
        f"Flagged = rejected or down-weighted, by {how}.",
        "",
        "| | flagged | of | rate |",
        "|---|---:|---:|---:|",
        f"| malicious replies in attack rounds (TPR) | {d['flagged_malicious']} | {d['malicious_replies']} | {pct(d['tpr'])} |",
        f"| honest replies (FPR) | {d['flagged_honest']} | {d['honest_replies']} | {pct(d['fpr'])} |",
    ]


def defense_lines(defense: dict[str, Any] | None) -> list[str]:
    """The strategy's assumed number of attackers f, and where it came from (none for rules without f)."""
    if not defense or defense.get("assumed_f") is None:
        return []
    return [
        f"- strategy `{defense['name']}` assumes f = {defense['assumed_f']} attackers per round, "
        f"from {defense['assumed_f_source']}"
    ]


def placement_lines(history: list[dict[str, Any]]) -> list[str]:
    """The omniscient adversary's exact placement per attack round (nothing for other attacks)."""
    placed = [(h["round"], h["placement"]) for h in history if h.get("placement")]
    if not placed:
        return []
    rows = [
        "## Exact placement of the rounding flips",
        "",
        "Per attack round: weights whose rounding the rule lets the colluders change, flips the learned rounding "
        "wants, flips placed, flips the rule's aggregate rounds as wished, other integers changed, and the "
        "distance budget used (honest spreads; '-' for none).",
        "",
        "| round | reachable | wanted | placed | landed | collateral | budget |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, m in placed:
        reach = f"{m['reachable']:.0f}" if "reachable" in m else "-"
        budget = f"{m['budget']:.2f}" if "budget" in m else "-"
        rows.append(
            f"| {r} | {reach} | {m['wanted']:.0f} | {m['kept']:.0f} | {m['landed']:.0f} | {m['collateral']:.0f} | {budget} |"
        )
    return rows + [""]


def persistence_lines(p: dict[str, Any] | None) -> list[str]:
    """The attack's persistence after its last round (nothing when no honest round followed it)."""
    if not p or not p["precisions"]:
        return []
    rows = [
        "## Persistence after the attack",
        "",
        f"Last attack round {p['last_attack_round']}, then {p['honest_rounds_after']} honest rounds; "
        f"rounds until the backdoor ASR falls below {100 * p['threshold']:.0f}% (ASR per evaluated round):",
        "",
        "| precision | rounds to fade | final ASR | ASR curve |",
        "|---|---:|---:|---|",
    ]
    for name, v in p["precisions"].items():
        fade = {None: "not within the run", 0: "0 (below at the last attack round)"}.get(
            v["rounds_to_fade"], str(v["rounds_to_fade"])
        )
        curve = ", ".join(f"r{r} {pct(a)}" for r, a in v["curve"])
        rows.append(f"| {name} | {fade} | {pct(v['final_asr'])} | {curve} |")
    return rows + [""]


def render_report(results: dict[str, Any]) -> str:
    """The run's report.md, from its results.json mapping."""
    s = results["scenario"]
    a = s["attack"]
    lines = [
        f"# fl_sim run: {s['name']}",
        "",
        s.get("description", "") or "",
        "",
        f"- dataset `{s['data']['source']}` ({results['data']['name']}), {s['federation']['num_clients']} clients "
        f"({s['data']['partitioner']}), {s['federation']['rounds']} rounds, strategy `{s['strategy']['name']}`, seed {s['seed']}",
        *defense_lines(results.get("defense")),
        f"- colluders: {a['num_malicious']} running `{a['behaviour']}` ({a['collusion']}, boost {a['boost']}), "
        f"ids {results['roles']['malicious']}, target label {a['target_label']}",
        f"- evaluation: activations {s['evaluation']['activations']}, weights {s['evaluation']['granularity']}; "
        "ASR counts triggered test images whose true class is not the target",
        f"- wall time {results['timing']['total_s']:.1f}s (federation {results['timing']['federation_s']:.1f}s)",
        "",
        "## Final global model",
        "",
        *final_table(results["final"]),
        "",
        "Disagreement: share of test inputs (clean and triggered) classified differently from FP32.",
        "",
        "## Per-class accuracy",
        "",
        *per_class_table(results["final"]),
        "",
        "## Detection",
        "",
        *detection_lines(results.get("detection")),
        "",
        *placement_lines(results["history"]),
        *persistence_lines(results.get("persistence")),
        "",
        "## Rounds",
        "",
        *history_table(results["history"]),
        "",
        *evaluation_sections(results.get("evaluation", {})),
        "Plots: " + ", ".join(f"`{p}`" for p in results.get("plots", [])) + ".",
        "",
    ]
    return "\n".join(lines)
