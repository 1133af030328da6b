"""Protocol ``worst_case`` (Yuan et al., arXiv 2303.13003; ../REFERENCE §3): PTQ over K random calibration sets.

Repeat post-training quantization with K random calibration sets of several sizes and
distributions, and report what the average hides: per-class and per-client accuracy drops (FP
minus quantized), the worst-group drop of each draw, and their spread across draws.

Draw k uses size ``sizes[k % S]`` and distribution ``distributions[(k // S) % D]``. Groups are the
test set's classes and the clients (each client's accuracy on up to ``client_examples`` of its own
examples). Precisions without calibration (fp32, fp16, bf16) are skipped. int<b> trials run
batched (fl_sim.evaluation.batched_trials).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any, cast

import torch

from fl_sim.config.precision import PrecisionKind, parse_precision
from fl_sim.data.tensors import ExampleSet
from fl_sim.evaluation.batched_trials import batched_predictions
from fl_sim.evaluation.calibration_draws import draw_calibration
from fl_sim.evaluation.precisions import precision_context, quant_options
from fl_sim.evaluation.protocols import PROTOCOLS, EvalContext
from fl_sim.models.metrics import accuracy, predict
from fl_sim.quantization.registry import calibrated_ranges

if TYPE_CHECKING:
    from fl_sim.quantization.fake_quant_model import Ranges


def group_accuracy(pred: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Accuracy within each group id (NaN for an empty group), vectorised with bincount."""
    correct = torch.bincount(groups[pred == y], minlength=num_groups).double()
    total = torch.bincount(groups, minlength=num_groups).double()
    return torch.where(total > 0, correct / total.clamp_min(1), torch.full_like(total, float("nan")))


def _client_eval_set(ctx: EvalContext, per_client: int) -> tuple[ExampleSet, torch.Tensor]:
    gen = ctx.generator("worst_case/clients")
    xs, ys, ids = [], [], []
    for i, c in enumerate(ctx.data.clients):
        idx = torch.randperm(len(c), generator=gen)[:per_client]
        xs.append(c.x[idx])
        ys.append(c.y[idx])
        ids.append(torch.full((len(idx),), i, dtype=torch.int64))
    return ExampleSet(torch.cat(xs), torch.cat(ys)), torch.cat(ids)


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values), "max": max(values)}


def _nanmax(t: torch.Tensor) -> float:
    return float(t[~torch.isnan(t)].max())


def _trial_predictions(
    ctx: EvalContext, name: str, calibrations: list[ExampleSet], clients: ExampleSet
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, N_test) and (K, N_clients) predictions at ``name``, one row per calibration set.

    int<b> with calibrated ranges batches all trials into one forward (``batched_predictions``);
    other precisions (tacq<b>: kept weights depend on the calibration set) run trial by trial.
    """
    ev, model, dev, bs = ctx.scenario.evaluation, ctx.model, ctx.device, ctx.scenario.evaluation.batch_size
    prec, options = parse_precision(name), quant_options(ev)
    if prec.kind is PrecisionKind.INT and options.quantize_activations and options.calibrated:
        # int<b> has bits, and calibrated activations always have ranges
        ranges = cast("list[Ranges]", [calibrated_ranges(model, cast(int, prec.bits), options, c, dev) for c in calibrations])
        spec = options.spec(cast(int, prec.bits))
        return (
            batched_predictions(model, spec, ranges, ctx.data.test.x, bs, dev),
            batched_predictions(model, spec, ranges, clients.x, bs, dev),
        )
    test, cli = [], []
    for calib in calibrations:
        with precision_context(model, name, ev, calib, dev):
            test.append(predict(model, ctx.data.test.x, bs, dev))
            cli.append(predict(model, clients.x, bs, dev))
    return torch.stack(test), torch.stack(cli)


@PROTOCOLS.register(
    "worst_case", "PTQ with K random calibration sets: mean/spread of accuracy, per-class and per-client drops, worst-group drop"
)
def run(ctx: EvalContext) -> dict[str, Any]:
    """Run ``worst_case.draws`` calibration draws at every int<b> and tacq<b> precision.

    Returns
    -------
    dict
        ``fp32`` (its accuracy), ``draws`` (one row per draw and precision: accuracy, drop, per-class and
        per-client drops, worst-class and worst-client drops) and ``summary`` (``summarise`` of the draws).
    """
    ev = ctx.scenario.evaluation
    wc = ev.worst_case
    names = [p for p in ev.precisions if parse_precision(p).kind in (PrecisionKind.INT, PrecisionKind.MIXED)]
    model, data, dev, bs = ctx.model.to(ctx.device), ctx.data, ctx.device, ev.batch_size
    clients, client_ids = _client_eval_set(ctx, wc.client_examples)
    n_cls, n_cli = data.num_classes, len(data.clients)

    def groups_of(pred_test: torch.Tensor, pred_cli: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        return (
            accuracy(pred_test, data.test.y),
            group_accuracy(pred_test, data.test.y, data.test.y, n_cls),
            group_accuracy(pred_cli, clients.y, client_ids, n_cli),
        )

    fp_acc, fp_cls, fp_cli = groups_of(predict(model, data.test.x, bs, dev), predict(model, clients.x, bs, dev))
    gen = ctx.generator("worst_case/draws")
    plan = []
    for k in range(wc.draws):
        size = wc.sizes[k % len(wc.sizes)]
        dist = wc.distributions[(k // len(wc.sizes)) % len(wc.distributions)]
        plan.append((k, dist, draw_calibration(data.clients, size, dist, n_cls, gen, data.text.pad_id if data.text else 0)))
    draws: list[dict[str, Any]] = []
    for name in names:
        test_pred, cli_pred = _trial_predictions(ctx, name, [c for _, _, c in plan], clients)
        for (k, dist, calib), pt, pc in zip(plan, test_pred, cli_pred):
            acc, cls, cli = groups_of(pt, pc)
            cls_drop, cli_drop = fp_cls - cls, fp_cli - cli
            draws.append(
                {
                    "draw": k,
                    "precision": name,
                    "size": len(calib),
                    "distribution": dist.value,
                    "accuracy": acc,
                    "drop": fp_acc - acc,
                    "class_drop": [None if torch.isnan(v) else float(v) for v in cls_drop],
                    "client_drop": [None if torch.isnan(v) else float(v) for v in cli_drop],
                    "worst_class_drop": _nanmax(cls_drop),
                    "worst_client_drop": _nanmax(cli_drop),
                }
            )
    return {"fp32": {"accuracy": fp_acc}, "draws": draws, "summary": summarise(draws, names)}


def summarise(draws: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Summarise the draws of each precision.

    Per precision: spread of accuracy, mean drop, worst-class and worst-client drops, overall and
    per calibration distribution.
    """
    out: dict[str, Any] = {}
    for name in names:
        mine = [d for d in draws if d["precision"] == name]
        by_dist = {}
        for dist in dict.fromkeys(d["distribution"] for d in mine):
            sub = [d for d in mine if d["distribution"] == dist]
            by_dist[dist] = {
                "accuracy": _spread([d["accuracy"] for d in sub]),
                "worst_class_drop": _spread([d["worst_class_drop"] for d in sub]),
            }
        out[name] = {
            "draws": len(mine),
            "accuracy": _spread([d["accuracy"] for d in mine]),
            "drop": _spread([d["drop"] for d in mine]),
            "worst_class_drop": _spread([d["worst_class_drop"] for d in mine]),
            "worst_client_drop": _spread([d["worst_client_drop"] for d in mine]),
            "by_distribution": by_dist,
        }
    return out
