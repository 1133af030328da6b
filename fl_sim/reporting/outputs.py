"""Assemble and write a run's outputs: results.json, report.md, plots, the global model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from fl_sim import __version__
from fl_sim.cohort import malicious_ids
from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.reporting.files import write_json_atomic, write_text_atomic
from fl_sim.reporting.eval_plots import write_eval_plots
from fl_sim.reporting.plots import write_plots
from fl_sim.reporting.report import render_report
from fl_sim.evaluation.detection import detection_rates
from fl_sim.evaluation.precisions import round_metrics


def build_results(s: Scenario, data: FederatedData, outcome, final: dict[str, Any], timing: dict[str, float],
                  evaluation: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    history = [dict(h) for h in outcome.history]
    if history:  # the last round's model is the final model: show every precision there
        history[-1]["precisions"] = round_metrics(final)
    return {
        "fl_sim_version": __version__,
        "scenario": s.model_dump(mode="json"),
        "data": {"name": data.name, "num_classes": data.num_classes, "client_sizes": data.client_sizes(),
                 "calibration_size": len(data.calibration), "test_size": len(data.test)},
        "roles": {"malicious": malicious_ids(s.seed, s.federation.num_clients, s.attack.num_malicious)},
        "history": history,
        "detection": detection_rates(history, set(malicious_ids(s.seed, s.federation.num_clients, s.attack.num_malicious))),
        "final": final,
        "evaluation": evaluation or {},
        "timing": timing,
        "cluster": cluster or {},
    }


def write_outputs(run_dir: Path, s: Scenario, data: FederatedData, outcome, final: dict[str, Any],
                  model: torch.nn.Module, timing: dict[str, float], evaluation: dict[str, Any] | None = None,
                  cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    results = build_results(s, data, outcome, final, timing, evaluation, cluster)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run_dir / "global_model.safetensors"))
    return write_report_files(run_dir, results)


def write_report_files(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Plots, report.md and (last) results.json, each written whole."""
    results["plots"] = write_plots(run_dir, results) + write_eval_plots(run_dir, results)
    write_text_atomic(run_dir / "report.md", render_report(results))
    write_json_atomic(run_dir / "results.json", results)
    return results
