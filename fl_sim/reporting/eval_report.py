"""report.md sections for the evaluation protocols (results.json's ``evaluation``)."""

from __future__ import annotations

from typing import Any


def pct(v: float | None) -> str:
    """Format a share as a percentage with two decimals ("n/a" for None)."""
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _pts(v: float) -> str:
    return f"{100 * v:.2f}"


def precisions_section(r: dict[str, Any]) -> list[str]:
    """Markdown table of the ``precisions`` protocol: one row per precision (a target-sample column when there is one)."""
    sample = any(m.get("target_sample_success") is not None for m in r.values())
    head = "| precision | clean accuracy | backdoor ASR | target-class accuracy |" + (" target sample hit |" if sample else "")
    rows = [head + " disagreement with FP32 |", "|---|---:|---:|---:|" + ("---:|" if sample else "") + "---:|"]
    for p, m in r.items():
        hit = f" {'yes' if m.get('target_sample_success') else 'no'} |" if sample else ""
        rows.append(
            f"| {p} | {pct(m['accuracy'])} | {pct(m['backdoor_asr'])} | {pct(m.get('target_class_accuracy'))} |{hit}"
            f" {pct(m.get('disagreement'))} |"
        )
    return rows


def worst_case_section(r: dict[str, Any]) -> list[str]:
    """Markdown tables of the ``worst_case`` protocol: spread per precision, then per calibration distribution."""
    rows = [
        f"FP32 accuracy {pct(r['fp32']['accuracy'])}. Drops are FP32 minus quantized, in points; "
        "mean ± std (min..max) over the calibration draws.",
        "",
        "| precision | draws | accuracy | mean drop | worst-class drop | worst-client drop |",
        "|---|---:|---|---|---|---|",
    ]
    for name, sm in r["summary"].items():

        def cell(d: dict[str, float]) -> str:
            return f"{_pts(d['mean'])} ± {_pts(d['std'])} ({_pts(d['min'])}..{_pts(d['max'])})"

        rows.append(
            f"| {name} | {sm['draws']} | {cell(sm['accuracy'])} | {cell(sm['drop'])} | "
            f"{cell(sm['worst_class_drop'])} | {cell(sm['worst_client_drop'])} |"
        )
    rows += [
        "",
        "| precision | calibration distribution | accuracy (mean ± std) | worst-class drop (mean ± std, max) |",
        "|---|---|---|---|",
    ]
    for name, sm in r["summary"].items():
        for dist, d in sm["by_distribution"].items():
            a, w = d["accuracy"], d["worst_class_drop"]
            rows.append(
                f"| {name} | {dist} | {_pts(a['mean'])} ± {_pts(a['std'])} | {_pts(w['mean'])} ± {_pts(w['std'])}, {_pts(w['max'])} |"
            )
    return rows


def word_substitution_section(r: dict[str, Any]) -> list[str]:
    """Markdown of the ``word_substitution`` protocol: settings, a row per precision, then each TextAttack recipe."""
    st = r["settings"]
    rows = [
        f"{r['examples']} test sentences; greedy word-importance ranking, up to {st['candidates']} embedding-neighbour "
        f"substitutes per word (cosine >= {st['min_similarity']}), at most {100 * st['max_perturb']:.0f}% of the words "
        "changed. Transferred: sentences attacked on FP32, classified at the precision; direct: attacked at the precision. "
        "Success rate and queries are over the sentences the model got right.",
        "",
        "| precision | clean | adversarial (transferred) | adversarial (direct) | attack success | mean queries | words changed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {x['precision']} | {pct(x['clean_accuracy'])} | {pct(x['transferred_accuracy'])} | {pct(x['adversarial_accuracy'])} | "
        f"{pct(x['attack_success_rate'])} | {x['mean_queries']:.1f} | {x['mean_words_changed']:.2f} |"
        for x in r["rows"]
    ]
    for name, rec in r.get("recipes", {}).items():
        if not rec["available"]:
            rows += ["", f"TextAttack recipe `{name}`: not run ({rec['reason']})."]
            continue
        rows += [
            "",
            f"TextAttack recipe `{name}` (direct):",
            "",
            "| precision | clean | adversarial | attack success | mean queries |",
            "|---|---:|---:|---:|---:|",
        ]
        rows += [
            f"| {p} | {pct(m['clean_accuracy'])} | {pct(m['adversarial_accuracy'])} | {pct(m['attack_success_rate'])} | "
            f"{m['mean_queries']:.1f} |"
            for p, m in rec["by_precision"].items()
        ]
    return rows


def robustness_section(r: dict[str, Any]) -> list[str]:
    """Markdown table of the ``robustness`` protocol (a text model's result as ``word_substitution_section``)."""
    if r.get("attack") == "greedy_embedding":  # a text model: the word-substitution attacks ran
        return word_substitution_section(r)
    rows = [
        f"{r['examples']} test examples. Transferred: crafted on FP32; direct: crafted on the quantized model (STE).",
        "",
        "| attack | epsilon | precision | clean | transferred | direct |",
        "|---|---:|---|---:|---:|---:|",
    ]
    rows += [
        f"| {x['attack']} | {x['epsilon']} | {x['precision']} | {pct(x['clean_accuracy'])} | "
        f"{pct(x['transferred_accuracy'])} | {pct(x['direct_accuracy'])} |"
        for x in r["rows"]
    ]
    return rows


def kernel_check_section(r: dict[str, Any]) -> list[str]:
    """Markdown table of the ``kernel_check`` protocol."""
    return [
        f"Kernel: {r['kernel']}; {r['examples']} test examples.",
        "",
        "| prediction agreement | accuracy real int8 | accuracy fake int8 | accuracy FP32 | max abs logit diff | mean abs logit diff (mean abs logit) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {pct(r['prediction_agreement'])} | {pct(r['accuracy_real_int8'])} | {pct(r['accuracy_fake_int8'])} | "
        f"{pct(r['accuracy_fp32'])} | {r['max_abs_logit_diff']:.4g} | {r['mean_abs_logit_diff']:.4g} ({r['mean_abs_logit_fp32']:.4g}) |",
    ]


def data_free_section(r: dict[str, Any]) -> list[str]:
    """Markdown table of the ``data_free`` protocol: accuracy per calibration and disagreement per input set."""
    rows = [
        f"Generator: {r['generator_steps']} steps, {r['samples']} samples. Accuracy on the test set with activation ranges "
        "from real server data, per batch (dynamic), or generated samples (no data); disagreement = share of inputs "
        "classified differently by FP32 and the quantized model.",
        "",
        "| precision | real calibration | dynamic | data-free calibration | disagreement: probe samples | uniform noise | test set |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["rows"]:
        a, d = x["accuracy"], x["disagreement"]
        rows.append(
            f"| {x['precision']} | {pct(a['real_calibration'])} | {pct(a['dynamic'])} | {pct(a['data_free_calibration'])} | "
            f"{pct(d['probe_samples'])} | {pct(d['uniform_noise'])} | {pct(d['test_set'])} |"
        )
    return rows


def _mitigation_row(method: str, variant: str, p: str, m: dict[str, Any], seconds: str, data: str) -> str:
    worst = ""
    if "worst_backdoor_asr" in m:
        worst = f" (worst {pct(m['worst_accuracy'])} / {pct(m['worst_backdoor_asr'])})"
    return (
        f"| {method} | {variant} | {p} | {pct(m['accuracy'])} | {pct(m['backdoor_asr'])}{worst} | "
        f"{pct(m.get('target_class_accuracy'))} | {seconds} | {data} |"
    )


def _data_text(d: dict[str, Any]) -> str:
    n = d.get("calibration_examples", 0)
    if not n:
        return "none"
    return f"{n} calibration examples, " + ("labeled" if d.get("labels") else "no labels")


def mitigation_section(r: dict[str, Any]) -> list[str]:
    """Markdown table of the ``mitigation`` protocol: the model as deployed, then each method's variants."""
    rows = [
        "Each mitigation is applied to the final global model before quantizing; activation ranges are calibrated "
        "on the server's calibration set throughout. Noise rows: mean over the draws (worst draw's accuracy / ASR).",
        "",
        "| method | variant | precision | clean accuracy | backdoor ASR | target-class accuracy | seconds | data used |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    rows += [_mitigation_row("as deployed", "round to nearest", p, m, "", "") for p, m in r["as_deployed"].items()]
    for method, entry in r["methods"].items():
        secs, data = f"{entry['seconds']:.1f}", _data_text(entry["data"])
        for variant, by_precision in entry["rows"].items():
            rows += [_mitigation_row(method, variant, p, m, secs, data) for p, m in by_precision.items()]
    return rows


def prerelease_section(r: dict[str, Any]) -> list[str]:
    """The ``prerelease`` verdict, and the probe's disagreement per patch position next to a noise patch's."""
    verdict = "FLAGGED: do not ship without a mitigation" if r["flagged"] else "not flagged"
    rows = [
        f"**Verdict: {verdict}** (score {pct(r['score'])}, threshold {pct(r['threshold'])}). FP32 vs {r['precision']} "
        f"disagree on {pct(r['clean_disagreement'])} of the clean calibration inputs; a patch optimised on "
        f"{r['examples']['optimised_on']} of them to split the two models makes them disagree on the share below of the "
        f"other {r['examples']['scored_on']} (a uniform-noise patch: up to {pct(r['noise_score'])}; the score is the "
        "larger of the two).",
        "",
        "| patch position (top, left) | optimised patch | noise patch |",
        "|---|---:|---:|",
    ]
    rows += [f"| {pos} | {pct(v)} | {pct(r['noise_patch'][pos])} |" for pos, v in r["probe"].items()]
    return rows


def rounding_margin_section(r: dict[str, Any]) -> list[str]:
    """Markdown tables of the ``rounding_margin`` protocol: weight noise, other quantizers, boundary distances."""
    rows = [
        f"Gaussian noise of sigma steps (of each layer's grid) added to the weights before rounding; {r['draws']} draws "
        "per sigma. Mean over the draws; worst for the deployer in brackets (lowest accuracy, highest ASR) and the "
        "attacker's worst (lowest ASR).",
        "",
        "| sigma (steps) | precision | accuracy: mean (worst) | backdoor ASR: mean (highest, lowest) |",
        "|---:|---|---|---|",
    ]
    for p, m in r["unperturbed"].items():
        rows.append(f"| 0 | {p} | {pct(m['accuracy'])} | {pct(m['backdoor_asr'])} |")
    for sigma, by_p in r["sigmas"].items():
        for p, m in by_p.items():
            a, b = m["accuracy"], m["backdoor_asr"]
            rows.append(
                f"| {sigma} | {p} | {pct(a['mean'])} ({pct(a['worst'])}) | {pct(b['mean'])} ({pct(b['worst'])}, {pct(b['best'])}) |"
            )
    rows += [
        "",
        "Other quantizers (one change from the configured one):",
        "",
        "| quantizer | precision | accuracy | backdoor ASR |",
        "|---|---|---:|---:|",
    ]
    rows += [
        f"| {q} | {p} | {pct(m['accuracy'])} | {pct(m['backdoor_asr'])} |"
        for q, by_p in r["quantizer_variants"].items()
        for p, m in by_p.items()
    ]
    rows += [
        "",
        "Share of each layer's weights within 0.01 / 0.05 / 0.1 steps of a rounding boundary:",
        "",
        "| precision | layer | < 0.01 | < 0.05 | < 0.1 |",
        "|---|---|---:|---:|---:|",
    ]
    for p, h in r["boundary_distance"].items():
        for layer, d in h["layers"].items():
            w = d["within"]
            rows.append(f"| {p} | {layer} | {pct(w['0.01'])} | {pct(w['0.05'])} | {pct(w['0.1'])} |")
    return rows


SECTIONS = {
    "precisions": ("Precisions (re-evaluated)", precisions_section),
    "worst_case": ("Worst-case PTQ over random calibration sets", worst_case_section),
    "robustness": ("Adversarial robustness", robustness_section),
    "word_substitution": ("Word-substitution robustness", word_substitution_section),
    "kernel_check": ("Real int8 kernel vs fake int8", kernel_check_section),
    "data_free": ("Data-free calibration and disagreement probe", data_free_section),
    "mitigation": ("Deployment-time mitigations", mitigation_section),
    "rounding_margin": ("Rounding margin: weight noise before rounding, other quantizers", rounding_margin_section),
    "prerelease": ("Pre-release check", prerelease_section),
}


def evaluation_sections(evaluation: dict[str, Any]) -> list[str]:
    """Report.md lines for results.json's ``evaluation``: a titled section per protocol, in its order."""
    lines: list[str] = []
    for name, entry in evaluation.items():
        title, render = SECTIONS[name]
        lines += [f"## {title} (`{name}`)", "", *render(entry["result"]), ""]
    return lines
