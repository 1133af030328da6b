"""Build the scenario's strategy: registered spec -> Flower class + kwargs -> controlled sampling."""

from __future__ import annotations

from flwr.serverapp.strategy import Strategy

from fl_sim.clients.faults import is_dropped
from fl_sim.config.schema import Scenario
from fl_sim.evaluation.precisions import pick_device
from fl_sim.server.controlled import controlled
from fl_sim.server.payload_guard import GuardLimits
from fl_sim.server.routing import execution_nodes, scenario_cohort_size
from fl_sim.server.strategy_registry import STRATEGIES
from fl_sim.server.tensor_strategy import ServerSide, TensorSpec


def build_strategy(s: Scenario, node_of: dict[int, int] | None = None) -> Strategy:
    """The controlled strategy for ``s``; ``node_of`` maps partition id -> Flower node id.
    Raises ValueError for parameters that cannot work (e.g. Bulyan with too few clients)."""
    spec = STRATEGIES.get(s.strategy.name)
    size = scenario_cohort_size(s)
    cls, kwargs = spec.build(s.strategy.strategy_params(), s.attack.num_malicious, size)
    strategy = controlled(cls)(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=size,
                               min_evaluate_nodes=0, min_available_nodes=execution_nodes(s), **kwargs)
    g = s.federation.guard
    strategy.setup_control(s.seed, s.federation.num_clients, size, node_of or {}, GuardLimits(g.max_norm_ratio, g.max_examples_ratio),
                           dropped=lambda rnd, pid: is_dropped(s, rnd, pid))
    if isinstance(spec, type) and issubclass(spec, TensorSpec):
        device = pick_device(s.evaluation.device)
        strategy.fl_device = device
        strategy.fl_rule = spec.rule(s.strategy.strategy_params(), s.attack.num_malicious, size, ServerSide(s, device))
    else:
        params = s.strategy.strategy_params()
        strategy.fl_decide = lambda updates, counts: spec.decisions(params, s.attack.num_malicious, size, updates, counts)
    return strategy
