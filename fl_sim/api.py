"""The Python API: run a scenario, load a finished run, read it as DataFrames, evaluate, plot, sweep.

```python
import fl_sim

run = fl_sim.run("scenarios/quickstart.yaml", overrides={"federation.rounds": 3}, out="runs/demo")
run.final                       # precision x metric
run.history["int4"]["backdoor_asr"]   # per round
run.clients                     # per round and client: role, decision, norm ratio, rule weight
run.evaluate("worst_case", draws=10)
run.plot("backdoor_asr")
table = fl_sim.sweep("scenarios/sweeps/classic_attack_x_defense.yaml")
```

The ``fl-sim`` command is a thin layer over these functions: the same scenario gives the same
results either way. User mistakes raise :class:`fl_sim.errors.UserError` with a one-line message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_sim.config.schema import Scenario
from fl_sim.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from matplotlib.axes import Axes

    from fl_sim.data.federated import FederatedData
    from fl_sim.sweeps.spec import SweepSpec
    from fl_sim.wiring import Wiring

ScenarioLike = str | Path | Mapping[str, Any] | Scenario
Overrides = Sequence[str] | Mapping[str, Any] | None


def _override_pairs(overrides: Overrides) -> list[tuple[str, Any]]:
    """``{"a.b": 3}`` as it is; ``["a.b=3"]`` parsed as ``--set`` parses it (values as YAML)."""
    from fl_sim.config.loader import parse_overrides

    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    return parse_overrides([str(o) for o in overrides])


def wiring_of(scenario: ScenarioLike, overrides: Overrides = None) -> Wiring:
    """A scenario given as a file, a mapping or a ``Scenario``, with ``overrides``, validated and wired.

    The same steps as ``fl-sim run`` (``fl_sim.wiring.load``): read, override, validate, make
    ``data.path`` absolute, wire; a one-line ``UserError`` on any problem.
    """
    import copy

    from fl_sim.config.loader import apply_override, read_yaml, validate_dict, with_absolute_data_path
    from fl_sim.config.schema import Scenario as ScenarioModel
    from fl_sim.wiring import wire_or_fail

    if isinstance(scenario, str | Path):
        raw, origin = read_yaml(scenario), str(scenario)
    elif isinstance(scenario, ScenarioModel):
        raw, origin = scenario.model_dump(mode="json"), "scenario"
    else:
        raw, origin = copy.deepcopy(dict(scenario)), "scenario"
    for key, value in _override_pairs(overrides):
        apply_override(raw, key, value)
    return wire_or_fail(with_absolute_data_path(validate_dict(raw, origin)), origin)


def announce(w: Wiring) -> None:
    """The one line a run starts with (stderr)."""
    import sys

    s = w.scenario
    print(
        f"fl-sim: running {s.name!r}: {s.federation.num_clients} clients ({s.attack.num_malicious} malicious), "
        f"{s.federation.rounds} rounds, strategy {s.strategy.spec}",
        file=sys.stderr,
    )


def run(
    scenario: ScenarioLike,
    overrides: Overrides = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    num_cpus: float | None = None,
    ray_address: str | None = None,
    verbose: bool = False,
) -> Run:
    """Run a scenario on Flower's simulation engine; returns the finished :class:`Run`.

    ``scenario``: a YAML file, a mapping (as the YAML would hold) or a ``Scenario``; ``overrides``:
    ``{"dotted.key": value}`` or ``["dotted.key=value"]`` as ``--set`` takes; ``out``: the run
    directory (default ``<output_dir>/<name>-<timestamp>``; an existing one needs ``force``).
    """
    from fl_sim.runner import choose_run_dir, run_scenario

    w = wiring_of(scenario, overrides)
    run_dir = choose_run_dir(w.scenario, str(out) if out is not None else None, force)
    announce(w)
    run_scenario(w, run_dir, verbose=verbose, ray_address=ray_address, num_cpus=num_cpus)
    return load_run(run_dir)


def resume(run_dir: str | Path, *, num_cpus: float | None = None, verbose: bool = False) -> Run:
    """Continue an interrupted run from its last finished round; returns the finished :class:`Run`."""
    from fl_sim.runner import resume_scenario, run_scenario

    w = resume_scenario(Path(run_dir))
    announce(w)
    run_scenario(w, Path(run_dir), verbose=verbose, resume=True, num_cpus=num_cpus)
    return load_run(run_dir)


def load_run(run_dir: str | Path) -> Run:
    """A finished run directory (one with ``results.json``) as a :class:`Run`."""
    path = Path(run_dir)
    file = path / "results.json"
    if not file.is_file():
        raise UserError(f"{path}: no results.json (not a finished fl-sim run)")
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return Run(path, results)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass
class Run:
    """A finished run: its directory and ``results.json``, read as pandas DataFrames."""

    dir: Path
    results: dict[str, Any]
    _cache: tuple[torch.nn.Module, FederatedData] | None = field(default=None, repr=False, compare=False)

    @property
    def scenario(self) -> dict[str, Any]:
        """The run's resolved scenario (as ``fl-sim validate`` prints it)."""
        return dict(self.results["scenario"])

    @property
    def final(self) -> pd.DataFrame:
        """The final global model's figures: one row per precision, one column per scalar metric."""
        import pandas as pd

        rows = {p: {k: v for k, v in m.items() if _scalar(v)} for p, m in self.results["final"].items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("precision")

    @property
    def history(self) -> pd.DataFrame:
        """Per round (index), per precision and metric (column levels); a precision not evaluated that round is NaN."""
        import pandas as pd

        table: dict[tuple[str, str], dict[int, float]] = {}
        for record in self.results["history"]:
            for precision, metrics in (record.get("precisions") or {}).items():
                for metric, value in metrics.items():
                    if _scalar(value) and not isinstance(value, str):
                        table.setdefault((precision, metric), {})[record["round"]] = _number(value)
        keys = sorted(table)
        columns = pd.MultiIndex.from_tuples(keys, names=["precision", "metric"])
        rounds = sorted({r for values in table.values() for r in values})
        data = [[table[k].get(r, math.nan) for k in keys] for r in rounds]
        return pd.DataFrame(data, index=pd.Index(rounds, name="round"), columns=columns)

    @property
    def clients(self) -> pd.DataFrame:
        """One row per round and sampled client: role, whether it replied, the server's decision, norm ratio, rule weight."""
        import pandas as pd

        bad = set(self.results["roles"]["malicious"])
        rows = []
        for r in self.results["history"]:
            for pid in r.get("cohort") or []:
                key = str(pid)
                rows.append(
                    {
                        "round": r["round"],
                        "client": pid,
                        "role": "malicious" if pid in bad else "honest",
                        "attack_active": bool(r.get("attack_active")),
                        "replied": pid in (r.get("replied") or []),
                        "decision": (r.get("decisions") or {}).get(key),
                        "norm_ratio": _number((r.get("update_norm_ratio") or {}).get(key)),
                        "rule_weight": _number((r.get("rule_weights") or {}).get(key)),
                        "rule_score": _number((r.get("rule_scores") or {}).get(key)),
                    }
                )
        columns = ["round", "client", "role", "attack_active", "replied", "decision", "norm_ratio", "rule_weight", "rule_score"]
        return pd.DataFrame(rows, columns=columns).set_index(["round", "client"])

    def evaluate(
        self, protocol: str | Sequence[str] | None = None, overrides: Overrides = None, **settings: Any
    ) -> dict[str, Any]:
        """Run evaluation protocol(s) on the saved global model, as ``fl-sim eval`` does; returns their results.

        ``protocol``: one name, several, or None for the run's ``evaluation.protocols``;
        ``settings``: the protocol's own keys (``draws=10`` for ``worst_case`` sets
        ``evaluation.worst_case.draws``); ``overrides``: any ``evaluation.*`` keys, as ``--set``.
        ``results.json`` and ``report.md`` are rewritten.
        """
        from fl_sim.reevaluate import reevaluate

        names = [] if protocol is None else [protocol] if isinstance(protocol, str) else list(protocol)
        if settings and len(names) != 1:
            raise UserError("keyword settings apply to one named protocol: call evaluate once per protocol")
        pairs = _override_pairs(overrides) + [(f"evaluation.{names[0]}.{k}", v) for k, v in settings.items()]
        sets = [f"{k}={json.dumps(v)}" for k, v in pairs]
        self.results = reevaluate(self.dir, names, sets)
        shown = names or list(self.results["scenario"]["evaluation"]["protocols"])
        return {n: self.results["evaluation"][n] for n in shown if n in self.results.get("evaluation", {})}

    def scenario_model(self) -> Scenario:
        """The run's scenario, validated (as it was run)."""
        from fl_sim.config.loader import validate_dict

        return validate_dict(self.results["scenario"], str(self.dir / "results.json"))

    def model(self) -> torch.nn.Module:
        """The final global model (FP32, on the CPU, in eval mode)."""
        return self._model_and_data()[0]

    def data(self) -> FederatedData:
        """The federation's data, rebuilt from the scenario (clients' shards, test set, server calibration set)."""
        return self._model_and_data()[1]

    def _model_and_data(self) -> tuple[torch.nn.Module, FederatedData]:
        if self._cache is None:
            from fl_sim.reevaluate import saved_model

            self._cache = saved_model(self.dir, self.scenario_model())
        return self._cache

    def predict(self, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """The global model's predicted labels for inputs ``x`` at ``precision`` (the run's quantizer settings and calibration)."""
        import torch

        from fl_sim.evaluation.precisions import precision_context

        model, data = self._model_and_data()
        s = self.scenario_model()
        with torch.no_grad(), precision_context(model, precision, s.evaluation, data.calibration, torch.device("cpu")) as m:
            labels: torch.Tensor = m(x).argmax(dim=1)
        return labels

    def triggered(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the scenario's backdoor trigger applied (a copy)."""
        from fl_sim.data.triggers import apply_trigger

        return apply_trigger(x, self.scenario_model().attack.trigger, self.data().text)

    def plot(self, metric: str = "accuracy", precisions: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
        """``metric`` per round for each precision evaluated (or those named); returns the matplotlib Axes."""
        import matplotlib.pyplot as plt

        history = self.history
        have = list(dict.fromkeys(history.columns.get_level_values("precision")))
        chosen = list(precisions) if precisions is not None else have
        missing = [p for p in chosen if p not in have]
        if missing:
            raise UserError(f"precision(s) {missing} not in the run's history (it has {have})")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        for p in chosen:
            if (p, metric) not in history.columns:
                raise UserError(f"metric {metric!r} is not recorded for {p} (it has {sorted(history[p].columns)})")
            series = history[(p, metric)].dropna()
            ax.plot(series.index, 100 * series.values, marker="o", label=p)
        ax.set_xlabel("round")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{self.results['scenario']['name']}: {metric}")
        ax.legend()
        return ax


def sweep_spec_of(spec: str | Path | Mapping[str, Any] | SweepSpec, base: Path | None = None) -> SweepSpec:
    """A sweep given as a file, a mapping or a ``SweepSpec``; scenario paths of a mapping resolve against ``base`` (cwd)."""
    from pydantic import ValidationError

    from fl_sim.config.loader import _format_error
    from fl_sim.sweeps.spec import SweepSpec as Spec
    from fl_sim.sweeps.spec import load_sweep

    if isinstance(spec, str | Path):
        return load_sweep(spec)
    try:
        parsed = spec if isinstance(spec, Spec) else Spec.model_validate(dict(spec))
    except ValidationError as exc:
        raise UserError("sweep: " + "; ".join(_format_error(e) for e in exc.errors())) from None
    root = (base or Path.cwd()).absolute()
    resolved = [str((root / Path(s).expanduser()).resolve()) for s in parsed.scenario]
    missing = next((s for s in resolved if not Path(s).is_file()), None)
    if missing is not None:
        raise UserError(f"sweep: scenario: file not found: {missing}")
    return parsed.model_copy(update={"scenario": resolved})


def sweep(
    spec: str | Path | Mapping[str, Any] | SweepSpec,
    out: str | Path | None = None,
    *,
    ray_address: str | None = None,
    report_only: bool = False,
) -> pd.DataFrame:
    """Run a sweep's unfinished cells and write its reports; returns its table (``results.csv``) as a DataFrame.

    Finished cells are never rerun, so calling it again resumes the sweep.
    """
    import pandas as pd

    from fl_sim.sweeps.sweep import run_sweep

    parsed = sweep_spec_of(spec)
    where = (Path(out) if out is not None else Path("runs") / "sweeps" / parsed.name).resolve()
    rows = run_sweep(parsed, where, ray_address, report_only)
    return pd.DataFrame(rows)
