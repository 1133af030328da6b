"""The ``fl-sim`` command: run, eval, sweep, validate and list. User mistakes print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fl_sim.errors import EXIT_USER_ERROR, UserError

if TYPE_CHECKING:
    from fl_sim.wiring import Wiring

LIST_KINDS = (
    "attacks",
    "strategies",
    "preaggregators",
    "replicas",
    "datasets",
    "models",
    "quantizers",
    "protocols",
    "mitigations",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's own code)
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (``fl-sim --help``)."""
    p = _Parser(
        prog="fl-sim",
        description="Federated learning under quantization: colluding malicious-QAT clients, "
        "robust aggregation, and per-precision evaluation of the global model.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a scenario on Flower's simulation engine and write its results")
    run.add_argument("scenario", nargs="?", help="scenario YAML file (omit with --resume)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last finished round")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key by its dotted path, e.g. --set data.path=/data/mnist (repeatable)",
    )
    run.add_argument(
        "--out",
        help="run directory (default: <output_dir>/<name>-<timestamp>); with --seeds, the folder "
        "that holds one run per seed (seed-<N>/) and summary.json / summary.md",
    )
    run.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="run the scenario once per seed and report the "
        "final figures as mean +- std; seeds already finished in --out are not rerun",
    )
    run.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    run.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    run.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="run the clients on the existing Ray cluster at this "
        "address (default: $RAY_ADDRESS, else a private local Ray instance)",
    )
    run.add_argument(
        "--num-cpus",
        type=int,
        metavar="N",
        help="CPUs of the private local Ray instance (default: all of this machine's); ignored with --ray-address",
    )
    ev = sub.add_parser("eval", help="run evaluation protocols on a finished run's global model (no retraining)")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument(
        "--protocol",
        dest="protocols",
        action="append",
        default=[],
        metavar="NAME",
        help="protocol to run (repeatable; default: the run's evaluation.protocols); see `fl-sim list protocols`",
    )
    ev.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an evaluation.* key (or data.path), e.g. --set evaluation.worst_case.draws=10",
    )
    sw = sub.add_parser(
        "sweep",
        help="run a grid of scenarios (attack x defense x ... x seed) on Ray; "
        "resumable; writes one table, heatmaps and a summary",
    )
    sw.add_argument("sweep", metavar="SWEEP.yaml")
    sw.add_argument("--out", help="sweep directory (default: runs/sweeps/<name>); finished cells there are not rerun")
    sw.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="run the cells on the existing Ray cluster at this address (default: $RAY_ADDRESS, else a local Ray instance)",
    )
    sw.add_argument("--report-only", action="store_true", help="run nothing: rebuild the table, heatmaps and summary")
    val = sub.add_parser("validate", help="check a scenario file and print its resolved form")
    val.add_argument("scenario")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    lst = sub.add_parser("list", help="list registered components")
    lst.add_argument("kind", choices=LIST_KINDS)
    return p


def _load(args: argparse.Namespace) -> Wiring:
    """The scenario file of ``args`` with its ``--set`` overrides, validated and wired."""
    from fl_sim.wiring import load

    return load(args.scenario, args.overrides)


def cmd_validate(args: argparse.Namespace) -> int:
    """``fl-sim validate``: check a scenario and print its resolved form."""
    import yaml

    s = _load(args).scenario
    print(f"{args.scenario}: valid (schema version {s.schema_version})")
    print(yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``fl-sim list KIND``: the registered components of a kind, one line each."""
    from fl_sim.components import CATALOGUE, MALICIOUS

    for e in CATALOGUE[args.kind]:
        if args.kind == "attacks":
            tag = "attack " if e.name in MALICIOUS else "honest "
            print(f"{e.name:<22} {tag} {e.description}")
        else:
            print(f"{e.name:<22} {e.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``fl-sim run``: one scenario (or one per seed with --seeds), or the rest of an interrupted run."""
    from fl_sim import api

    if args.num_cpus is not None and args.num_cpus < 1:
        raise UserError(f"--num-cpus must be at least 1, got {args.num_cpus}")
    if args.resume:
        if args.scenario or args.overrides or args.out:
            raise UserError("--resume takes only the run directory (no scenario, --set or --out)")
        run = api.resume(args.resume, num_cpus=args.num_cpus, verbose=args.verbose)
    elif not args.scenario:
        raise UserError("run needs a scenario file (or --resume RUN_DIR)")
    elif args.seeds:
        return _run_seeds(args)
    else:
        run = api.run(
            args.scenario,
            args.overrides,
            args.out,
            force=args.force,
            num_cpus=args.num_cpus,
            ray_address=args.ray_address,
            verbose=args.verbose,
        )
    for name, m in run.results["final"].items():
        print(f"{name:>6}: accuracy {100 * m['accuracy']:.2f}%  backdoor ASR {100 * m['backdoor_asr']:.2f}%")
    print(f"results: {run.dir}/results.json  report: {run.dir}/report.md")
    return 0


def _run_seeds(args: argparse.Namespace) -> int:
    """``run --seeds``: one run per seed under --out, then the mean +- std summary."""
    import json
    from datetime import datetime

    from fl_sim import api
    from fl_sim.reporting.seeds import markdown, summarize, write_summary

    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise UserError(f"--seeds must be distinct non-negative integers, got {args.seeds}")
    if any(o.split("=", 1)[0].strip() == "seed" for o in args.overrides):
        raise UserError("--seeds and --set seed=... conflict: give the seeds with --seeds only")
    first = _load(args).scenario
    out = Path(args.out) if args.out else Path(first.output_dir) / f"{first.name}-seeds-{datetime.now():%Y%m%d-%H%M%S}"
    per_seed = {}
    for seed in args.seeds:
        run_dir = out / f"seed-{seed}"
        if (run_dir / "results.json").is_file() and not args.force:
            print(f"fl-sim: seed {seed}: already finished in {run_dir}", file=sys.stderr)
        else:
            print(f"fl-sim: seed {seed}: running {first.name!r} into {run_dir}", file=sys.stderr)
            # no finished run there (or --force): write it, as the loop always has
            api.run(
                args.scenario,
                [*args.overrides, f"seed={seed}"],
                run_dir,
                force=True,
                num_cpus=args.num_cpus,
                ray_address=args.ray_address,
                verbose=args.verbose,
            )
        per_seed[seed] = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    summary = summarize(per_seed)
    write_summary(out, first.name, summary)
    print(markdown(first.name, summary))
    print(f"summary: {out}/summary.json  {out}/summary.md")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``fl-sim sweep``: run (or report) a grid of scenarios."""
    from fl_sim import api
    from fl_sim.sweeps.summary import DONE
    from fl_sim.sweeps.sweep import SUMMARY

    spec = api.sweep_spec_of(args.sweep)
    out = (Path(args.out) if args.out else Path("runs") / "sweeps" / spec.name).resolve()
    table = api.sweep(spec, out, ray_address=args.ray_address, report_only=args.report_only)
    unfinished = [str(c) for c, status in zip(table["cell"], table["status"]) if status != DONE]
    print(f"{len(table) - len(unfinished)} of {len(table)} cells done; summary: {out / SUMMARY}")
    if unfinished:
        print(
            f"fl-sim: {len(unfinished)} cells not done (see {out / SUMMARY}); run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``fl-sim eval``: evaluation protocols on a finished run's global model."""
    from fl_sim import api

    run = api.load_run(args.run_dir)
    done = run.evaluate(args.protocols or None, args.overrides)
    for name, result in done.items():
        print(f"{name}: {result['seconds']:.1f}s on {result['device']}")
    print(f"results: {run.dir}/results.json  report: {run.dir}/report.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fl-sim`` entry point: the command's exit code (2 for a user mistake, one line on stderr)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # Ray's future default; silences its warning
    try:
        args = build_parser().parse_args(argv)
        return {"run": cmd_run, "eval": cmd_eval, "sweep": cmd_sweep, "validate": cmd_validate, "list": cmd_list}[args.command](
            args
        )
    except UserError as exc:
        print(f"fl-sim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fl-sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
