"""The Flower ClientApp: answers the server's partition query and trains by role."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_sim.config.schema import Scenario
from fl_sim.cohort import sample_cohort
from fl_sim.server.attack_trace import ATTACK_TARGET
from fl_sim.server.build import scenario_cohort_size


def scenario_path(context: Context) -> str:
    """run_config['scenario'], resolved against the working directory, else the project root
    (``flwr run`` may start the apps elsewhere)."""
    from pathlib import Path

    p = Path(str(context.run_config["scenario"]))
    if not p.is_absolute() and not p.exists():
        p = Path(__file__).resolve().parents[2] / p
    return str(p)


def _scenario_from_context(context: Context) -> Scenario:
    from fl_sim.config.loader import load_scenario

    return load_scenario(scenario_path(context))


def make_client_app(scenario: Scenario | None = None) -> ClientApp:
    """A ClientApp for ``scenario`` (or, under ``flwr run``, the one named in the run config)."""
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Report this node's partition id; meanwhile warm this worker process up (imports, the
        federation's data, cached per process) so that round 1 does not pay for it."""
        from fl_sim import components  # noqa: F401
        from fl_sim.data.federated import federated_data

        s = scenario or _scenario_from_context(context)
        federated_data(s.data, s.federation.num_clients, s.seed)
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        from fl_sim import components  # noqa: F401  (registries in this worker process)
        from fl_sim.clients.faults import maybe_fail
        from fl_sim.clients.runtime import run_client
        from fl_sim.data.federated import federated_data

        s = scenario or _scenario_from_context(context)
        res_cpus = s.federation.client_resources.num_cpus
        torch.set_num_threads(max(1, int(res_cpus)))
        device = torch.device("cuda" if s.federation.client_resources.num_gpus > 0 and torch.cuda.is_available() else "cpu")
        config = msg.content["config"]
        # the partition to train: named by the server (nodes may serve any client), else the node's own
        pid = int(config["partition-id"]) if "partition-id" in config else int(context.node_config["partition-id"])
        rnd = int(config["server-round"])
        maybe_fail(s, rnd, pid)
        data = federated_data(s.data, s.federation.num_clients, s.seed)
        cohort = sample_cohort(s.seed, rnd, s.federation.num_clients, scenario_cohort_size(s))
        res = run_client(s, data, pid, rnd, msg.content["arrays"].to_torch_state_dict(), cohort, device)
        metrics = MetricRecord({"num-examples": res.num_examples, **res.metrics})
        content = {"arrays": ArrayRecord(res.state), "metrics": metrics}
        if res.attack_target is not None:
            content[ATTACK_TARGET] = ArrayRecord(res.attack_target)
        return Message(RecordDict(content), reply_to=msg)

    return app


app = make_client_app()
