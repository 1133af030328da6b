"""Assemble and write a run's outputs: results.json, report.md, plots, the global model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from fl_sim import __version__
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.evaluation.detection import detection_rates
from fl_sim.evaluation.persistence import persistence
from fl_sim.evaluation.precisions import round_metrics
from fl_sim.files import write_json_atomic, write_text_atomic
from fl_sim.reporting.eval_plots import write_eval_plots
from fl_sim.reporting.plots import write_plots
from fl_sim.reporting.report import render_report
from fl_sim.server.aggregation import DefensePlan
from fl_sim.server.loop import FederationOutcome


def defense_section(name: str, plan: DefensePlan) -> dict[str, Any]:
    """The strategy and the number of attackers it assumed, saying where that number came from."""
    if plan.assumed_f is None:
        source = None
    elif plan.f_is_true_count:
        source = "attack.num_malicious (the true count: strategy.params.num_malicious was not set)"
    else:
        source = "strategy.params.num_malicious"
    pre = [{"name": p.step_name, "params": p.params.model_dump(mode="json"), "assumed_f": p.assumed_f} for p in plan.pre]
    return {"name": name, "assumed_f": plan.assumed_f, "assumed_f_source": source, "pre": pre}


def build_results(
    s: Scenario,
    malicious: tuple[int, ...],
    defense: DefensePlan,
    data: FederatedData,
    outcome: FederationOutcome,
    final: dict[str, Any],
    timing: dict[str, float],
    evaluation: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results.json mapping of a finished run (``malicious``: the ground truth, for the records)."""
    records = list(outcome.history)
    if records:  # the last round's model is the final model: show every precision there
        records[-1] = records[-1].with_precisions(round_metrics(final))
    history = [r.to_json() for r in records]
    return {
        "fl_sim_version": __version__,
        "scenario": s.model_dump(mode="json"),
        "data": {
            "name": data.name,
            "num_classes": data.num_classes,
            "client_sizes": data.client_sizes(),
            "calibration_size": len(data.calibration),
            "test_size": len(data.test),
        },
        "roles": {"malicious": list(malicious)},
        "defense": defense_section(s.strategy.spec, defense),
        "history": history,
        "detection": detection_rates(history, set(malicious)),
        "persistence": persistence(history),
        "final": final,
        "evaluation": evaluation or {},
        "timing": timing,
        "cluster": cluster or {},
    }


def write_outputs(
    run_dir: Path,
    s: Scenario,
    malicious: tuple[int, ...],
    defense: DefensePlan,
    data: FederatedData,
    outcome: FederationOutcome,
    final: dict[str, Any],
    model: torch.nn.Module,
    timing: dict[str, float],
    evaluation: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save the global model, then the plots, report.md and results.json; return the results."""
    results = build_results(s, malicious, defense, data, outcome, final, timing, evaluation, cluster)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run_dir / "global_model.safetensors"))
    return write_report_files(run_dir, results)


def write_report_files(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Plots, report.md and (last) results.json, each written whole."""
    results["plots"] = write_plots(run_dir, results) + write_eval_plots(run_dir, results)
    write_text_atomic(run_dir / "report.md", render_report(results))
    write_json_atomic(run_dir / "results.json", results)
    return results
