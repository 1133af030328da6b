"""PNG plots of the evaluation protocols.

Accuracy and ASR vs bit width, per-class drop box plots across the worst-case calibration draws,
adversarial accuracy vs epsilon.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from matplotlib.figure import Figure  # no pyplot: a caller's backend (a notebook's) is left alone

from fl_sim.config.precision import PrecisionKind, parse_precision

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _panels(keys: list[str], width: float) -> tuple[Figure, list[tuple[Axes, str]]]:
    """One figure with a panel per key: (figure, [(axis, key), ...])."""
    fig = Figure(figsize=(width * len(keys), 4))
    axes = fig.subplots(1, len(keys), squeeze=False)
    return fig, list(zip(axes[0], keys))


def _label(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def bits_plot(path: Path, by_precision: dict[str, dict[str, Any]]) -> bool:
    """Accuracy and ASR of the int<b> precisions against b, FP32 as a dashed reference."""
    ints = sorted((parse_precision(p).bits, m) for p, m in by_precision.items() if parse_precision(p).kind is PrecisionKind.INT)
    if len(ints) < 2:
        return False
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bits = cast("list[int]", [b for b, _ in ints])  # int<b> precisions all have bits
    for metric, label in (("accuracy", "clean accuracy"), ("backdoor_asr", "backdoor ASR")):
        line = ax.plot(bits, [100 * m[metric] for _, m in ints], marker="o", label=label)[0]
        if "fp32" in by_precision:
            ax.axhline(100 * by_precision["fp32"][metric], ls="--", color=line.get_color(), alpha=0.6, label=f"{label} (fp32)")
    _label(ax, "bits", "%", "final global model vs bit width")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def class_drop_boxplot(path: Path, worst_case: dict[str, Any]) -> bool:
    """Box plot of each class's accuracy drop across the calibration draws, a panel per precision.

    ``worst_case`` is the protocol's result; returns False (and writes nothing) when it has no draws.
    """
    draws = worst_case.get("draws", [])
    names = list(dict.fromkeys(d["precision"] for d in draws))
    if not names:
        return False
    fig, panels = _panels(names, 5)
    for ax, name in panels:
        mine = [d["class_drop"] for d in draws if d["precision"] == name]
        per_class = [[100 * row[c] for row in mine if row[c] is not None] for c in range(len(mine[0]))]
        ax.boxplot(per_class)
        ax.set_xticks(range(1, len(per_class) + 1), [str(c) for c in range(len(per_class))])
        _label(
            ax, "class", "accuracy drop FP32 - quantized (points)", f"{name}: per-class drop over {len(mine)} calibration sets"
        )
    _save(fig, path)
    return True


def word_attack_plot(path: Path, result: dict[str, Any]) -> bool:
    """Clean and adversarial accuracy (transferred, direct) per precision, as grouped bars.

    ``result`` is a ``word_substitution`` result (also ``robustness``'s on a text model); returns False (and writes
    nothing) when it has no rows.
    """
    rows = result.get("rows", [])
    if not rows:
        return False
    fig, panels = _panels(["word substitution"], 1.4 * len(rows) + 3)
    ax = panels[0][0]
    keys = [
        ("clean_accuracy", "clean"),
        ("transferred_accuracy", "adversarial, transferred from FP32"),
        ("adversarial_accuracy", "adversarial, direct"),
    ]
    for k, (key, label) in enumerate(keys):
        ax.bar([i + 0.27 * (k - 1) for i in range(len(rows))], [100 * r[key] for r in rows], width=0.27, label=label)
    ax.set_xticks(range(len(rows)), [r["precision"] for r in rows])
    _label(ax, "precision", "accuracy (%)", f"word-substitution attack, {result['examples']} sentences")
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def adversarial_plot(path: Path, robustness: dict[str, Any]) -> bool:
    """Adversarial accuracy vs epsilon, a panel per attack: direct (solid) and transferred from FP32 (dashed) per precision.

    A text model's result (the word-substitution attack) is drawn by ``word_attack_plot`` instead;
    returns False (and writes nothing) when there are no rows.
    """
    if robustness.get("attack") == "greedy_embedding":
        return word_attack_plot(path, robustness)
    rows = robustness.get("rows", [])
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    if not attacks:
        return False
    fig, panels = _panels(attacks, 5.5)
    for ax, attack in panels:
        mine = [r for r in rows if r["attack"] == attack]
        for name in dict.fromkeys(r["precision"] for r in mine):
            pts = sorted((r["epsilon"], r) for r in mine if r["precision"] == name)
            eps = [0.0] + [e for e, _ in pts]
            clean = pts[0][1]["clean_accuracy"]
            direct = [
                (e, r["direct_accuracy"]) for e, r in pts if r["direct_accuracy"] is not None
            ]  # None: no gradients (real kernel)
            line = ax.plot(
                [0.0] + [e for e, _ in direct], [100 * clean] + [100 * a for _, a in direct], marker="o", label=f"{name} direct"
            )[0]
            if name != "fp32":
                ax.plot(
                    eps,
                    [100 * clean] + [100 * r["transferred_accuracy"] for _, r in pts],
                    marker="x",
                    ls="--",
                    color=line.get_color(),
                    label=f"{name} transferred",
                )
        _label(ax, "epsilon (L-inf)", "adversarial accuracy (%)", attack.upper())
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=7)
    _save(fig, path)
    return True


def rounding_margin_plot(path: Path, result: dict[str, Any]) -> bool:
    """Accuracy and ASR of each int<b> precision against the noise sigma, and the boundary-distance histogram.

    Accuracy and ASR of each int<b> precision against the noise sigma (mean, band = min..max), and
    the histogram of the weights' distance to the nearest boundary (all layers).
    """
    sigmas = [float(k) for k in result["sigmas"]]
    precs = list(result["unperturbed"])[1:]
    if not sigmas or not precs:
        return False
    fig, panels = _panels(["accuracy", "backdoor_asr", "distance"], 4.2)
    for ax, key in panels[:2]:
        for p in precs:
            m = [result["sigmas"][f"{x:g}"][p][key] for x in sigmas]
            mean = [100 * v["mean"] for v in m]
            lo = [100 * min(v["worst"], v["best"]) for v in m]
            hi = [100 * max(v["worst"], v["best"]) for v in m]
            ax.plot(sigmas, mean, marker="o", label=p)
            ax.fill_between(sigmas, lo, hi, alpha=0.2)
        ax.set_xscale("log")
        ax.set_ylim(-2, 102)
        _label(ax, "weight noise sigma (steps)", "%", "clean accuracy" if key == "accuracy" else "backdoor ASR")
        ax.legend(fontsize=7)
    ax = panels[2][0]
    for p, h in result["boundary_distance"].items():
        edges = h["bin_edges"]
        counts = [sum(layer["counts"][i] for layer in h["layers"].values()) for i in range(len(edges) - 1)]
        total = max(sum(counts), 1)
        ax.step(edges[:-1], [100 * c / total for c in counts], where="post", label=p)
    _label(ax, "distance to nearest rounding boundary (steps)", "% of weights", "boundary distance")
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def write_eval_plots(run_dir: Path, results: dict[str, Any]) -> list[str]:
    """Write the plots of the protocols found in ``results`` into ``run_dir``; return their file names.

    The bit-width plot uses the ``precisions`` protocol's result if there is one, else the run's ``final`` section.
    """
    ev = results.get("evaluation", {})
    made = []
    if bits_plot(run_dir / "by_bit_width.png", ev.get("precisions", {}).get("result", results["final"])):
        made.append("by_bit_width.png")
    if "worst_case" in ev and class_drop_boxplot(run_dir / "worst_case_class_drop.png", ev["worst_case"]["result"]):
        made.append("worst_case_class_drop.png")
    if "robustness" in ev and adversarial_plot(run_dir / "adversarial_accuracy.png", ev["robustness"]["result"]):
        made.append("adversarial_accuracy.png")
    if "word_substitution" in ev and word_attack_plot(run_dir / "word_attack_accuracy.png", ev["word_substitution"]["result"]):
        made.append("word_attack_accuracy.png")
    if "rounding_margin" in ev and rounding_margin_plot(run_dir / "rounding_margin.png", ev["rounding_margin"]["result"]):
        made.append("rounding_margin.png")
    return made
