"""Run named protocols on one model; each section records the evaluation settings it used."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from fl_sim.config.schema import Scenario
from fl_sim.data.federated import FederatedData
from fl_sim.devices import pick_device
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.progress import progress


def run_protocols(model: nn.Module, data: FederatedData, s: Scenario, names: list[str]) -> dict[str, Any]:
    """{name: {"settings", "device", "seconds", "result"}} for each protocol in ``names``."""
    ctx = EvalContext(model, data, s, pick_device(s.evaluation.device))
    out: dict[str, Any] = {}
    for name in progress(names, "evaluation protocols", unit="protocol"):
        t0 = time.monotonic()
        result = PROTOCOLS.get(name)(ctx)
        # A protocol's headline map ("index") is also readable at the section's top level.
        index = result.pop("index", {}) if isinstance(result, dict) else {}
        out[name] = {
            **index,
            "settings": s.evaluation.model_dump(mode="json"),
            "device": str(ctx.device),
            "seconds": time.monotonic() - t0,
            "result": result,
        }
    return out
