"""Wall time of one colluder's attack-round work over one honest client's round, for the attack
methods side by side: `repair` (the scenario as shipped) and `qat` (the former recipe of the same
scenario: malicious QAT of the full objective for --qat-epochs with keep_best and 4 benign runs).

    python benchmarks/attack_round.py [SCENARIO.yaml] [--repeats 3] [--qat-epochs 60]

Each measurement calls fl_sim.clients.runtime.run_client (the code a Flower client runs) in this
process from the same global model (the initial model trained honestly for --warmup FedAvg rounds
here, so that the attack starts from a trained model, as in the scenario's last round). The
variants take turns, --repeats times each; the median seconds and the ratio over the honest
client are printed. In a Flower round the honest clients run in parallel on the workers and the
colluders' work adds to the slowest worker, so the round-time ratio is lower than this one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fl_sim.clients.runtime import run_client
from fl_sim.data.federated import federated_data
from fl_sim.server.loop import initial_model
from fl_sim.server.plain_loop import fedavg
from fl_sim.wiring import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="scenarios/quickstart.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qat-epochs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3, help="honest FedAvg rounds before the measured round")
    args = ap.parse_args()
    torch.set_num_threads(1)
    w = load(args.scenario)
    s = w.scenario
    if s.attack.num_malicious == 0:
        raise SystemExit("the scenario has no colluders")
    data = federated_data(s.data, s.federation.num_clients, s.seed)
    cohort = list(range(s.federation.num_clients))
    bad = w.malicious
    honest_id = next(i for i in cohort if i not in bad)
    # An honest warm-up (rounds before the attack: the attack is scheduled in the last round only).
    honest_s = load(args.scenario, ["attack.num_malicious=0"]).clients
    state = initial_model(s, data).state_dict()
    for rnd in range(1, args.warmup + 1):
        res = [run_client(honest_s, data, pid, rnd, state, cohort, torch.device("cpu")) for pid in cohort]
        state = fedavg([r.state for r in res], [r.num_examples for r in res])
    attack_round = s.attack.start_round
    qat = load(
        args.scenario,
        [
            "attack.params.method=qat",
            f"attack.params.epochs={args.qat_epochs}",
            "attack.params.keep_best=true",
            "attack.params.benign_runs=4",
            "attack.params.margin=0.1",
        ],
    ).clients
    variants = {
        "honest client": (w.clients, honest_id),
        "repair colluder": (w.clients, bad[0]),
        "qat colluder (former recipe)": (qat, bad[0]),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    print(f"scenario {s.name}: round {attack_round}, {len(cohort)} clients, colluders {bad}, torch threads 1")
    for _ in range(args.repeats):
        for name, (sc, pid) in variants.items():
            t0 = time.perf_counter()
            run_client(sc, data, pid, attack_round, state, cohort, torch.device("cpu"))
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["honest client"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<30} median {med:7.2f} s   ratio: {med / base:6.1f}x   (runs: {', '.join(f'{t:.2f}' for t in ts)})")


if __name__ == "__main__":
    main()
