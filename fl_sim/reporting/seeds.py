"""One scenario over several seeds: the per-seed final figures and their mean +- std.

``summarize`` is pure (results dicts in, summary dict out); ``write_summary`` writes
``summary.json`` and ``summary.md`` next to the per-seed run directories.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, cast

from fl_sim.files import write_json_atomic, write_text_atomic

FINAL_METRICS = ("accuracy", "backdoor_asr")


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def attack_round_figures(history: list[dict[str, Any]], colluders: list[int]) -> dict[str, float | None]:
    """Summarise a run's attack rounds from its round history.

    The colluders' largest update norm ratio, the aggregate's least integer hit rate and the attack
    rounds' mean wall time over the honest rounds', from a run's round history (None where there is
    nothing to measure).

    Parameters
    ----------
    history
        The run's per-round records (results.json ``history``), round 0 included.
    colluders
        Client ids of the malicious clients.
    """
    ratios: list[float] = []
    hits: list[float] = []
    attack_s: list[float] = []
    honest_s: list[float] = []
    prev = 0.0
    for h in history:
        took, prev = h["elapsed_s"] - prev, h["elapsed_s"]
        if h["round"] == 0:
            continue
        (attack_s if h.get("attack_active") else honest_s).append(took)
        if h.get("attack_active"):
            ratios += [v for k, v in h.get("update_norm_ratio", {}).items() if int(k) in colluders and v is not None]
            hits += list((h.get("integer_hit_rate") or {}).values())
    return {
        "colluder_norm_ratio": max(ratios) if ratios else None,
        "integer_hit_rate": min(hits) if hits else None,
        "attack_round_over_honest": (statistics.fmean(attack_s) / statistics.fmean(honest_s) if attack_s and honest_s else None),
    }


def summarize(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """{"seeds", "final": {precision: {metric: stats}}, "attack": {figure: stats}, "per_seed": ...}.

    Built from each seed's results.json content; stats are mean, sample std, min and max over the
    seeds (an attack figure no seed has is None). Raises ValueError when ``per_seed`` is empty.
    """
    if not per_seed:
        raise ValueError("no seed finished: nothing to summarize")
    seeds = sorted(per_seed)
    precisions = list(per_seed[seeds[0]]["final"])
    final = {p: {m: _stats([per_seed[s]["final"][p][m] for s in seeds]) for m in FINAL_METRICS} for p in precisions}
    rows = {s: attack_round_figures(per_seed[s]["history"], per_seed[s].get("roles", {}).get("malicious", [])) for s in seeds}
    attack = {}
    for fig in ("colluder_norm_ratio", "integer_hit_rate", "attack_round_over_honest"):
        vals = [rows[s][fig] for s in seeds if rows[s][fig] is not None]
        attack[fig] = _stats(cast(list[float], vals)) if vals else None  # the Nones are filtered out
    per = {
        str(s): {"final": {p: {m: per_seed[s]["final"][p][m] for m in FINAL_METRICS} for p in precisions}, **rows[s]}
        for s in seeds
    }
    return {"seeds": seeds, "final": final, "attack": attack, "per_seed": per}


def _pm(st: dict[str, float] | None, scale: float = 100.0, unit: str = "%") -> str:
    return "n/a" if st is None else f"{scale * st['mean']:.2f}{unit} +- {scale * st['std']:.2f}{unit}"


def markdown(name: str, summary: dict[str, Any]) -> str:
    """Summary.md text of ``summarize``'s result for the scenario ``name``."""
    lines = [
        f"# {name}: {len(summary['seeds'])} seeds ({', '.join(map(str, summary['seeds']))})",
        "",
        "Mean +- sample std over the seeds (each seed is a whole run: data split, roles, training).",
        "",
        "| precision | accuracy | backdoor ASR |",
        "|---|---:|---:|",
    ]
    for p, m in summary["final"].items():
        lines.append(f"| {p} | {_pm(m['accuracy'])} | {_pm(m['backdoor_asr'])} |")
    a = summary["attack"]
    lines += [
        "",
        "| attack rounds | mean +- std |",
        "|---|---:|",
        f"| colluders' update norm / median honest norm | {_pm(a['colluder_norm_ratio'], 1.0, 'x')} |",
        f"| integer hit rate of the aggregate | {_pm(a['integer_hit_rate'])} |",
        f"| attack round wall time / honest round | {_pm(a['attack_round_over_honest'], 1.0, 'x')} |",
        "",
    ]
    return "\n".join(lines)


def write_summary(out: Path, name: str, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and ``summary.md`` into ``out`` (atomically)."""
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "summary.md", markdown(name, summary))
