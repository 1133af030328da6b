"""report.md: the tables a reader wants, from results.json's content."""

from __future__ import annotations

from typing import Any


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def final_table(final: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| precision | clean accuracy | backdoor ASR |", "|---|---:|---:|"]
    rows += [f"| {p} | {_pct(m['accuracy'])} | {_pct(m['backdoor_asr'])} |" for p, m in final.items()]
    return rows


def per_class_table(final: dict[str, dict[str, Any]]) -> list[str]:
    precisions = list(final)
    n = len(next(iter(final.values()))["per_class_accuracy"])
    rows = ["| class | " + " | ".join(precisions) + " |", "|---|" + "---:|" * len(precisions)]
    for c in range(n):
        rows.append(f"| {c} | " + " | ".join(_pct(final[p]["per_class_accuracy"][c]) for p in precisions) + " |")
    return rows


def history_table(history: list[dict[str, Any]]) -> list[str]:
    rows = ["| round | clients | malicious in cohort | attack active | FP32 accuracy | FP32 ASR |", "|---:|---:|---|---|---:|---:|"]
    for h in history:
        fp = h["precisions"].get("fp32", {})
        rows.append(f"| {h['round']} | {len(h['replied'])} | {h['malicious_in_cohort'] or '-'} | "
                    f"{'yes' if h['attack_active'] else 'no'} | {_pct(fp.get('accuracy'))} | {_pct(fp.get('backdoor_asr'))} |")
    return rows


def render_report(results: dict[str, Any]) -> str:
    s = results["scenario"]
    a = s["attack"]
    lines = [
        f"# fl_sim run: {s['name']}", "",
        s.get("description", "") or "", "",
        f"- dataset `{s['data']['source']}` ({results['data']['name']}), {s['federation']['num_clients']} clients "
        f"({s['data']['partitioner']}), {s['federation']['rounds']} rounds, strategy `{s['strategy']['name']}`, seed {s['seed']}",
        f"- colluders: {a['num_malicious']} running `{a['behaviour']}` ({a['collusion']}, boost {a['boost']}), "
        f"ids {results['roles']['malicious']}, target label {a['target_label']}",
        f"- evaluation: activations {s['evaluation']['activations']}, weights {s['evaluation']['granularity']}; "
        "ASR counts triggered test images whose true class is not the target",
        f"- wall time {results['timing']['total_s']:.1f}s (federation {results['timing']['federation_s']:.1f}s)", "",
        "## Final global model", "", *final_table(results["final"]), "",
        "## Per-class accuracy", "", *per_class_table(results["final"]), "",
        "## Rounds", "", *history_table(results["history"]), "",
        "Plots: `accuracy_per_round.png`, `asr_per_round.png`, `final_by_precision.png`.", "",
    ]
    return "\n".join(lines)
