"""Wiring: a validated scenario resolved once into the components a run uses."""
