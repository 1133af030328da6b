"""Every registry, populated with the built-in components.

Every registry, populated: the one place that loads the built-in components (datasets, models,
behaviours, strategies, pre-aggregators, quantizers, protocols, mitigations). Only the wiring step imports it; scenarios may name
only what is registered here.
"""

from __future__ import annotations

from typing import Any

import strategies  # noqa: F401  (registers the aggregation strategies)
from fl_sim.clients import BEHAVIOURS, MALICIOUS
from fl_sim.data.sources import DATASETS
from fl_sim.evaluation.mitigations import MITIGATIONS
from fl_sim.evaluation.protocols import PROTOCOLS, register_protocols
from fl_sim.models import MODELS
from fl_sim.preaggregators import PREAGGREGATORS
from fl_sim.quantization.registry import QUANTIZERS
from fl_sim.registry import Registry
from fl_sim.rule_replicas import REPLICAS
from fl_sim.server.aggregation import STRATEGIES

register_protocols()

CATALOGUE: dict[str, Registry[Any]] = {
    "attacks": BEHAVIOURS,
    "strategies": STRATEGIES,
    "preaggregators": PREAGGREGATORS,
    "datasets": DATASETS,
    "models": MODELS,
    "quantizers": QUANTIZERS,
    "protocols": PROTOCOLS,
    "mitigations": MITIGATIONS,
    "replicas": REPLICAS,  # the rules adaptive attacks can run a copy of (attack.params.against)
}

__all__ = [
    "BEHAVIOURS",
    "CATALOGUE",
    "DATASETS",
    "MALICIOUS",
    "MITIGATIONS",
    "MODELS",
    "PREAGGREGATORS",
    "PROTOCOLS",
    "QUANTIZERS",
    "STRATEGIES",
]
