"""Evaluation: metrics on batched predictions, and the per-precision evaluation of a model."""
