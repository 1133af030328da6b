"""``fl-sim eval RUN_DIR``: evaluation protocols on a finished run's global model.

``fl-sim eval RUN_DIR``: run evaluation protocols on a finished run's saved global model, without
retraining, and add their sections to its results.json, report.md and plots.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_sim.config.schema import Scenario
from fl_sim.errors import UserError

if TYPE_CHECKING:
    import torch

    from fl_sim.data.federated import FederatedData

# What an eval may change: how the model is evaluated, and where the data now lives.
ALLOWED_PREFIXES = ("evaluation.", "data.path")


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    if not path.is_file() or not (run_dir / "global_model.safetensors").is_file():
        raise UserError(f"{run_dir}: not a finished fl-sim run (needs results.json and global_model.safetensors)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(results, dict) or "scenario" not in results:
        raise UserError(f"{path}: has no scenario section")
    return results


def eval_scenario(results: dict[str, Any], overrides: list[str], origin: str) -> Scenario:
    """The run's scenario with the allowed ``--set`` overrides, validated and wired."""
    from fl_sim.config.loader import apply_override, parse_overrides
    from fl_sim.wiring import from_dict

    raw = copy.deepcopy(results["scenario"])
    for key, value in parse_overrides(overrides):
        if not key.startswith(ALLOWED_PREFIXES):
            raise UserError(f"--set {key}: eval may only change evaluation.* and data.path (the model is already trained)")
        apply_override(raw, key, value)
    return from_dict(raw, origin).scenario


# The evaluation keys that only protocols read: changing them leaves results.json's ``final`` valid.
PROTOCOL_KEYS = frozenset(
    {"protocols", "worst_case", "robustness", "word_attack", "data_free", "mitigation", "rounding_margin", "prerelease"}
)


def saved_model(run_dir: Path, s: Scenario) -> tuple[torch.nn.Module, FederatedData]:
    """The global model saved in ``run_dir`` and the federation's data, rebuilt from scenario ``s``."""
    from safetensors.torch import load_file

    from fl_sim.data.federated import federated_data
    from fl_sim.server.loop import initial_model

    try:
        data = federated_data(s.data, s.federation.num_clients, s.seed)
    except ValueError as exc:
        raise UserError(f"data: {exc}") from None
    model = initial_model(s, data)
    try:
        model.load_state_dict(load_file(str(run_dir / "global_model.safetensors")))
    except (RuntimeError, OSError) as exc:
        raise UserError(f"{run_dir}/global_model.safetensors does not fit the scenario's model: {exc}") from None
    return model.eval(), data


def _run_on_saved_model(run_dir: Path, results: dict[str, Any], s: Scenario, names: list[str]) -> dict[str, Any]:
    """Run ``names`` on the saved global model of ``run_dir`` under ``s``; add their sections and rewrite the outputs."""
    from fl_sim.evaluation.protocols import PROTOCOLS
    from fl_sim.evaluation.protocols.run import run_protocols
    from fl_sim.reporting.outputs import write_report_files

    for name in names:
        if name not in PROTOCOLS:
            raise UserError(f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS.names())})")
    model, data = saved_model(run_dir, s)
    results.setdefault("evaluation", {}).update(run_protocols(model, data, s, names))
    return write_report_files(run_dir, results)


def reevaluate(run_dir: Path, protocols: list[str], overrides: list[str]) -> dict[str, Any]:
    """Run ``protocols`` on the saved global model of ``run_dir``; rewrite its results and report."""
    results = _read_results(run_dir)
    s = eval_scenario(results, overrides, str(run_dir / "results.json"))
    return _run_on_saved_model(run_dir, results, s, list(dict.fromkeys(protocols or s.evaluation.protocols)))


# A protocol's own settings key under ``evaluation``, where it differs from the protocol's name.
_OWN_KEY = {"word_substitution": "word_attack"}


def _protocol_settings(name: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """What protocol ``name`` reads from the evaluation section: the shared quantizer settings and its own key."""
    own = _OWN_KEY.get(name, name)
    return {k: v for k, v in evaluation.items() if k not in PROTOCOL_KEYS or k == own}


def stale_protocols(results: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """The protocols of ``evaluation`` that a finished run lacks, or ran under settings they read that have changed."""
    done = results.get("evaluation") or {}
    return [
        n
        for n in evaluation["protocols"]
        if n not in done or _protocol_settings(n, done[n].get("settings") or {}) != _protocol_settings(n, evaluation)
    ]


def bring_up_to_date(run_dir: Path, evaluation: dict[str, Any]) -> list[str]:
    """Give a finished run the protocols of ``evaluation`` (validated, differing from its own only in ``PROTOCOL_KEYS``).

    Runs the stale protocols on the saved model, records ``evaluation`` as the run's evaluation section
    and rewrites its outputs; returns the protocols run. ``final`` and ``history`` are kept.
    """
    from fl_sim.wiring import from_dict

    results = _read_results(run_dir)
    raw = copy.deepcopy(results["scenario"])
    changed = {k for k in set(raw["evaluation"]) | set(evaluation) if raw["evaluation"].get(k) != evaluation.get(k)}
    if not changed <= PROTOCOL_KEYS:
        raise UserError(f"{run_dir}: evaluation.{sorted(changed - PROTOCOL_KEYS)[0]} differs; only protocol settings can change")
    raw["evaluation"] = evaluation
    s = from_dict(raw, str(run_dir / "results.json")).scenario
    names = stale_protocols(results, s.evaluation.model_dump(mode="json"))
    results["scenario"] = s.model_dump(mode="json")
    _run_on_saved_model(run_dir, results, s, names)
    return names
