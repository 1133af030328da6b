"""Scenario schema (typed, versioned) and the YAML loader with dotted-path overrides."""

from fl_sim.config.loader import load_scenario, parse_overrides
from fl_sim.config.schema import Scenario

__all__ = ["Scenario", "load_scenario", "parse_overrides"]
