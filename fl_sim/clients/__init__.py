"""Client behaviours (honest, honest QAT, malicious QAT attacks) and the Flower ClientApp."""

from fl_sim.clients import adaptive_crafted, crafted, data_poisoning, honest, hostile, malicious_qat, qat_rounding  # noqa: F401  (register the behaviours)
from fl_sim.clients.registry import BEHAVIOURS, MALICIOUS

__all__ = ["BEHAVIOURS", "MALICIOUS"]
