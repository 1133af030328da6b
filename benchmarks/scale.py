"""Scale: time per round and memory of fl-sim at 100 and 1,000 clients (10% sampled per round),
measured side by side in one run on the scenario scenarios/scale/mnist_1000_clients.yaml.

    python benchmarks/scale.py [--data-path ../shared/data/mnist] [--clients 100 1000] [--rounds 5]

Memory is the resident memory of this process and all its children (the local Ray instance: GCS,
raylet, client actors), sampled every 0.2 s: `peak` over the whole run, and per round at its end
(from results.json's history) to show whether it grows with rounds.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

from fl_sim.data.federated import _cached
from fl_sim.memory import tree_rss_mb
from fl_sim.runner import run_scenario
from fl_sim.wiring import load

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "scale" / "mnist_1000_clients.yaml"


class PeakMemory:
    """Samples the process tree's RSS in a background thread; ``peak`` in MiB."""

    def __init__(self, every: float = 0.2) -> None:
        self.peak = 0.0
        self._every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb() or 0.0)
            self._stop.wait(self._every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(n: int, args: argparse.Namespace, extra: list[str] | None = None) -> tuple[float, float, int]:
    """Run ``n`` clients; print its figures; return (median s/round, peak MiB, client examples)."""
    w = load(
        SCENARIO,
        [f"federation.num_clients={n}", f"federation.rounds={args.rounds}", f"data.path={args.data_path}", *(extra or [])],
    )
    logging.getLogger("flwr").setLevel(logging.WARNING)
    _cached.cache_clear()  # each measurement starts without the previous one's data in this process
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        t0 = time.perf_counter()
        res = run_scenario(w, Path(tmp) / "run")
        total = time.perf_counter() - t0
    hist = res["history"]
    per_round = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(hist, hist[1:])]
    sampled = len(hist[1]["cohort"])
    mems = [h["memory_mb"] for h in hist[1:]]
    label = f"{n:>5} clients{' (' + ', '.join(extra) + ')' if extra else ''}"
    print(
        f"{label}, {sampled} per round: s/round median {statistics.median(per_round):.2f} "
        f"(rounds: {', '.join(f'{x:.1f}' for x in per_round)}); whole run {total:.1f} s; "
        f"final FP32 accuracy {100 * res['final']['fp32']['accuracy']:.1f}%"
    )
    print(
        f"{label} memory: peak {mem.peak:.0f} MiB; at the end of rounds 1..{args.rounds}: "
        f"{', '.join(f'{m:.0f}' for m in mems)} MiB (last - first: {mems[-1] - mems[0]:+.0f} MiB)"
    )
    return statistics.median(per_round), mem.peak, sum(res["data"]["client_sizes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", default=str(REPO.parent / "shared" / "data" / "mnist"), help="MNIST IDX folder")
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.data_path).is_dir():
        raise SystemExit(f"scale.py: error: --data-path {args.data_path} is not a folder (MNIST IDX files)")
    print(
        f"setup: {SCENARIO.relative_to(REPO)}, {args.rounds} rounds, 10% of clients per round, "
        f"data {args.data_path}; memory = this process + its children (local Ray instance)"
    )
    figures = {n: measure(n, args) for n in args.clients}
    small, large = min(figures), max(figures)
    if small != large:
        print(
            f"ratio: s/round {figures[large][0] / figures[small][0]:.2f}, peak memory "
            f"{figures[large][1] / figures[small][1]:.2f} ({large} clients over {small})"
        )
        # The same cohort (10% of the largest population) and the same examples per client, but a
        # population of only that cohort: what the population size itself costs per round.
        cohort = large // 10
        base = measure(
            cohort,
            args,
            ["federation.fraction_train=1.0", f"data.max_train_examples={figures[large][2] * cohort // large + 256}"],
        )  # + the server's 256
        print(
            f"ratio: s/round {figures[large][0] / base[0]:.2f}, peak memory {figures[large][1] / base[1]:.2f} "
            f"({large} clients, {cohort} per round, over {cohort} clients all training with as much data each)"
        )


if __name__ == "__main__":
    main()
