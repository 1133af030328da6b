"""Aggregation rules and defenses, one per module, each registered by name in
``fl_sim.server.strategy_registry.STRATEGIES``. Importing this package registers them all."""

from strategies import bulyan, fedavg, fedmedian, fedtrimmedavg, krum, multikrum  # noqa: F401
