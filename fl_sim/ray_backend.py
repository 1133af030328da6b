"""Where a run's clients execute: a local Ray instance or an existing cluster.

Where a run's clients execute: a private local Ray instance (the default) or an existing Ray
cluster given by its address. Flower's simulation engine calls ``ray.init`` with ``init_args``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fl_sim.config.schema import Scenario

LOCAL = "local"  # Ray's keyword for "start a new local instance, even if a cluster runs on this machine"


def resolve_address(address: str | None) -> str:
    """``--ray-address`` if given, else ``$RAY_ADDRESS``, else a private local instance.

    Without this, ``ray.init()`` would silently join the last cluster started on this machine
    with ``ray start`` (Ray's own lookup), and a run's resources would depend on that.
    """
    return address or os.environ.get("RAY_ADDRESS") or LOCAL


def backend_config(
    s: Scenario, address: str | None = None, num_cpus: float | None = None, verbose: bool = False
) -> dict[str, Any]:
    """Flower's ``backend_config``: per-client resources from the scenario and Ray's init args.

    ``num_cpus`` caps a local instance (a sweep cell gets the CPUs its task reserved); it is
    ignored when joining a cluster, whose size is the cluster's.
    """
    res = s.federation.client_resources
    init: dict[str, Any] = {
        "address": resolve_address(address),
        "logging_level": logging.ERROR,
        "log_to_driver": verbose,
        "include_dashboard": False,
    }
    if init["address"] != LOCAL:
        del init["include_dashboard"]  # a cluster's dashboard is the cluster's business
    elif num_cpus is not None:
        init["num_cpus"] = max(1, int(num_cpus))
    return {"client_resources": {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}, "init_args": init}


def cluster_info(address: str | None = None) -> dict[str, Any]:
    """The Ray cluster this process is connected to: address asked for, live nodes, CPUs, GPUs."""
    import ray

    if not ray.is_initialized():
        return {"address": resolve_address(address), "nodes": None, "cpus": None, "gpus": None}
    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]  # ray leaves it unannotated
    total = ray.cluster_resources()  # type: ignore[no-untyped-call]  # ray leaves it unannotated
    return {
        "address": resolve_address(address),
        "nodes": len(nodes),
        "cpus": float(total.get("CPU", 0.0)),
        "gpus": float(total.get("GPU", 0.0)),
    }
