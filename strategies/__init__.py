"""Aggregation rules and defenses, one per module.

Each is registered by name in ``fl_sim.server.aggregation.STRATEGIES``. Importing this package registers them all.
"""

from strategies import (  # noqa: F401
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
    multikrum,
    norm_clipping,
    quant_aware,
    rfa,
)
