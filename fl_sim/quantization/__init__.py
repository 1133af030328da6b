"""Quantization: exact fake-quantization primitives, PTQ of whole models, QAT forward."""
