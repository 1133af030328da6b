"""The Flower ClientApp: answers the server's partition query and trains by role."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_sim.clients.faults import maybe_fail
from fl_sim.clients.plan import ClientPlan
from fl_sim.clients.registry import SubmissionMemo
from fl_sim.clients.runtime import ATTACK_TARGET, run_client
from fl_sim.cohort import sample_cohort
from fl_sim.data.federated import federated_data


def make_client_app(plan_for: Callable[[Context], ClientPlan]) -> ClientApp:
    """A ClientApp whose clients follow the plan ``plan_for`` gives in their context.

    ``fl-sim run`` passes the run's plan (``lambda _: plan``); ``flwr run`` resolves the scenario
    named in the run config. Each client process keeps one :class:`SubmissionMemo`.
    """
    app = ClientApp()
    memo = SubmissionMemo()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        """Report this node's partition id and warm the worker up (the federation's data, cached per process)."""
        s = plan_for(context).scenario
        federated_data(s.data, s.federation.num_clients, s.seed)
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"info": MetricRecord({"partition-id": pid})}), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        """Train the partition the server names, from the global model it sent."""
        plan = plan_for(context)
        s = plan.scenario
        torch.set_num_threads(max(1, int(s.federation.client_resources.num_cpus)))
        device = torch.device("cuda" if s.federation.client_resources.num_gpus > 0 and torch.cuda.is_available() else "cpu")
        config = cast(ConfigRecord, msg.content["config"])
        # the partition to train: named by the server (nodes may serve any client), else the node's own
        pid = int(cast(int, config["partition-id"])) if "partition-id" in config else int(context.node_config["partition-id"])
        rnd = int(cast(int, config["server-round"]))
        maybe_fail(s, rnd, pid)
        data = federated_data(s.data, s.federation.num_clients, s.seed)
        cohort = sample_cohort(s.seed, rnd, s.federation.num_clients, plan.cohort_size)
        res = run_client(
            plan, data, pid, rnd, cast(ArrayRecord, msg.content["arrays"]).to_torch_state_dict(), cohort, device, memo
        )
        metrics = MetricRecord({"num-examples": res.num_examples, **res.metrics})
        content: dict[str, ArrayRecord | MetricRecord | ConfigRecord] = {"arrays": ArrayRecord(res.state), "metrics": metrics}
        if res.attack_target is not None:
            content[ATTACK_TARGET] = ArrayRecord(res.attack_target)
        return Message(RecordDict(content), reply_to=msg)

    return app
