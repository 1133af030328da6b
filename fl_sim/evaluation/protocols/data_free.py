"""Protocol ``data_free`` (../REFERENCE §5): PTQ calibrated without data, and a disagreement probe.

For each int precision, accuracy with activation ranges calibrated on real server data, taken per
batch (dynamic), and calibrated on samples from a generator trained against the FP/quantized pair
with no data; then a generator pushed to maximise FP/quantized disagreement, whose samples'
disagreement rate is compared with the test set's.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import torch
from torch import nn

from fl_sim.config.precision import PrecisionKind, parse_precision
from fl_sim.config.schema import EvaluationConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.errors import UserError
from fl_sim.evaluation.precisions import precision_context, quant_spec
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models.metrics import accuracy, predict
from fl_sim.quantization.datafree import GeneratorConfig, sample, train_generator
from fl_sim.quantization.fake_quant_model import fake_quantized


def _disagreement(
    model: nn.Module, name: str, ev: EvaluationConfig, calib: ExampleSet, inputs: dict[str, torch.Tensor], dev: torch.device
) -> dict[str, float]:
    """Share of each input set classified differently by FP32 and ``name`` (one calibration)."""
    fp = {k: predict(model, x, ev.batch_size, dev) for k, x in inputs.items()}
    with precision_context(model, name, ev, calib, dev):
        return {k: float((fp[k] != predict(model, x, ev.batch_size, dev)).float().mean()) for k, x in inputs.items()}


@PROTOCOLS.register(
    "data_free",
    "PTQ calibrated on generator samples (no data) vs real data vs dynamic; generator probe of FP/quantized disagreement",
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Run the protocol on ``ctx.model`` (images only: a text dataset is a UserError).

    Returns
    -------
    dict
        ``generator_steps``, ``samples`` and ``rows``: per int precision, ``accuracy`` (real, dynamic and
        data-free calibration) and ``disagreement`` with FP32 on probe samples, uniform noise and the test set.
    """
    if ctx.data.text is not None:
        raise UserError("protocol data_free generates images; it has no text counterpart yet (token ids are discrete)")
    ev, data, dev = ctx.scenario.evaluation, ctx.data, ctx.device
    model = ctx.model.to(dev)
    cfg = GeneratorConfig(steps=ev.data_free.steps, batch_size=ev.data_free.batch_size)
    dynamic_ev = ev.model_copy(update={"activations": "dynamic"})
    x, y = data.test.x, data.test.y
    rows = []
    for name in ev.precisions:
        prec = parse_precision(name)
        if prec.kind is not PrecisionKind.INT:
            continue
        spec = quant_spec(cast(int, prec.bits), ev)  # an int precision always has bits
        gen = ctx.generator(f"data_free/{name}")
        acc = {}
        for label, cfg_ev, calib in (("real_calibration", ev, data.calibration), ("dynamic", dynamic_ev, data.calibration)):
            with precision_context(model, name, cfg_ev, calib, dev):
                acc[label] = accuracy(predict(model, x, ev.batch_size, dev), y)
        g = train_generator(
            model,
            partial(fake_quantized, model, spec),
            data.num_classes,
            cast(tuple[int, int, int], data.input_shape),
            False,
            cfg,
            gen,
            dev,
        )  # images: (C, H, W)
        xs, ys = sample(g, ev.data_free.samples, data.num_classes, gen, dev)
        synthetic = ExampleSet(xs.cpu(), ys.cpu())
        with precision_context(model, name, ev, synthetic, dev):
            acc["data_free_calibration"] = accuracy(predict(model, x, ev.batch_size, dev), y)
        probe = train_generator(
            model,
            partial(precision_context, model, name, ev, data.calibration, dev),
            data.num_classes,
            cast(tuple[int, int, int], data.input_shape),
            True,
            cfg,
            gen,
            dev,
        )
        px, _ = sample(probe, ev.data_free.samples, data.num_classes, gen, dev)
        noise = torch.rand(px.shape, generator=gen)
        inputs = {"probe_samples": px.cpu(), "uniform_noise": noise, "test_set": x}
        rows.append(
            {"precision": name, "accuracy": acc, "disagreement": _disagreement(model, name, ev, data.calibration, inputs, dev)}
        )
    return {"generator_steps": cfg.steps, "samples": ev.data_free.samples, "rows": rows}
