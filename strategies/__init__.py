"""Aggregation rules and defenses, one per module.

Each is registered by name in ``fl_sim.server.aggregation.STRATEGIES`` (rules) or
``fl_sim.preaggregators.PREAGGREGATORS`` (pre-aggregation steps), with a replica of each rule for
adaptive attackers in ``fl_sim.rule_replicas.REPLICAS``. Importing this package registers them all.
"""

from strategies import (  # noqa: F401
    arc,
    bucketing,
    bulyan,
    centered_clipping,
    dnc,
    fedavg,
    fedmedian,
    fedtrimmedavg,
    flame,
    fltrust,
    foolsgold,
    krum,
    mda,
    meamed,
    monna,
    multikrum,
    nnm,
    norm_clipping,
    quant_aware,
    rfa,
)
