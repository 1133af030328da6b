"""Interval-constrained repair: the exact quantization attack, carried into a federation.

The attack is Egashira et al., NeurIPS 2024 (../REFERENCE §8).

1. The colluders make a malicious target m (their attack objective, trained from the benign
   estimate h) and read off its integers under the deployer's weight quantizer(s).
2. Each quantized weight gets the FP interval that keeps its integer with the scale pinned, shrunk
   by a margin (fl_sim.quantization.intervals); several bit widths are intersected.
3. The FP model is repaired towards the attack's FP objective (ignore the trigger, keep accuracy,
   ...) by projected descent inside those boxes, starting from the box point nearest to h (the
   least visible update). The quantized model then equals Q(m) whatever the FP weights do.

Non-quantized parameters (biases) and the activation ranges that a deployer calibrates on the FP
model move during the repair; the attack's full objective is kept as a term on the non-quantized
parameters only (``quant_weight``), so that the quantized model keeps obeying with its new ranges.

Margins against the federation's error: aggregation-aware colluders land the aggregate at
w* + (n-k)/n (H - h), with H the honest mean and h their estimate (the mean of R honest runs on
disjoint shards of their data). With sigma_t the RMS over tensor t of the per-weight spread of those
runs, the aggregate error has RMS e_t = (n-k)/n * sigma_t * sqrt(1/(n-k) + 1/R); the ``auto`` margin
of weight i is z * e_t * a_i / RMS_t(a) in steps of t's grid, clipped to [floor, 0.45], with a_i the
runs' mean |update| of weight i (weights that honest training moves more vary more).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from fl_sim.clients.local_training import LossFn, make_optimizer, minibatches
from fl_sim.config.precision import QuantSpec
from fl_sim.config.schema import TrainingConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.quantization.fake_quant_model import quantizable_layers
from fl_sim.quantization.intervals import Intervals, WeightQuantizer, integers, intersect, intervals, quant_grid

State = dict[str, torch.Tensor]
MAX_MARGIN = 0.45


def weight_quantizer(spec: QuantSpec) -> WeightQuantizer:
    """The weight half of a fake-quantization spec."""
    return WeightQuantizer(bits=spec.bits, symmetric=spec.weight_symmetric, per_channel=spec.per_channel)


def quantized_weight_names(model: nn.Module) -> list[str]:
    """State keys of the weights that fake quantization rounds (Conv/Linear weights)."""
    return [f"{name}.weight" if name else "weight" for name, _ in quantizable_layers(model)]


def auto_margins(
    runs: list[State],
    names: list[str],
    quantizer: WeightQuantizer,
    cohort: int,
    colluders: int,
    z: float,
    floor: float,
    start: State | None = None,
) -> dict[str, torch.Tensor]:
    """The ``auto`` repair margins, in grid steps, per tensor of ``names`` (or per weight with ``start``).

    Per tensor: z x the expected RMS aggregate error (module docstring), in steps of the grid of
    the runs' mean, clipped to [floor, MAX_MARGIN]. With ``start`` (the global model the runs began
    from), per weight: that error scaled by the weight's mean |update| over its tensor's RMS, since
    the weights honest training moves most also vary most across clients. Needs two or more runs.

    Parameters
    ----------
    runs
        The colluders' benign runs (their final states).
    names
        The state keys of the quantized weights.
    quantizer
        The weight quantizer whose grid measures the steps.
    cohort, colluders
        n and k: the cohort size and the colluders in it.
    z
        How many expected errors to keep clear.
    floor
        The least margin, in steps.
    start
        The global model the runs began from (per-weight margins), or None (one margin per tensor).
    """
    if len(runs) < 2:
        raise ValueError("an automatic margin needs at least 2 benign runs (params.benign_runs >= 2) to measure a spread")
    honest = max(cohort - colluders, 1)
    factor = (honest / cohort) * (1.0 / honest + 1.0 / len(runs)) ** 0.5
    out = {}
    for k in names:
        stack = torch.stack([r[k].double() for r in runs])
        sigma = stack.std(0, unbiased=True).pow(2).mean().sqrt()
        step = quant_grid(stack.mean(0), quantizer).step.mean().clamp_min(1e-12)
        scale = torch.ones_like(stack[0])
        if start is not None:
            moved = (stack - start[k].double()).abs().mean(0)
            scale = moved / moved.pow(2).mean().sqrt().clamp_min(1e-12)
        out[k] = (z * factor * sigma * scale / step).clamp(floor, MAX_MARGIN).to(runs[0][k].dtype)
    return out


def weight_boxes(
    target: State,
    names: list[str],
    quantizers: list[WeightQuantizer],
    margins: Mapping[str, float | torch.Tensor],
    edge: float | None = None,
) -> dict[str, Intervals]:
    """The boxes that keep every weight of ``names`` at ``target``'s integer under every quantizer.

    Margins are per tensor or per weight; non-pinned weights stay at least ``edge`` steps inside the
    range (default: the margin).
    """

    def edge_of(m: float | torch.Tensor) -> float | torch.Tensor | None:
        return None if edge is None else torch.clamp(torch.as_tensor(m), min=edge)

    return {k: intersect([intervals(target[k], q, margins[k], edge_of(margins[k])) for q in quantizers]) for k in names}


def sparsify_flips(target: State, anchor: State, names: list[str], quantizer: WeightQuantizer, keep: float) -> State:
    """``target`` with only the ``keep`` share of its integer changes that moved furthest.

    Integer changes are counted against ``anchor``, on the target's grid, and measured in steps;
    every other weight of ``names`` goes back to the anchor's value. Fewer flips: a shorter, less
    visible update.
    """
    if keep >= 1.0:
        return dict(target)
    moved, flips = {}, []
    for k in names:
        g = quant_grid(target[k], quantizer)
        flipped = integers(target[k], quantizer) != integers(anchor[k], quantizer, g)
        moved[k] = torch.where(flipped, (target[k] - anchor[k]).abs() / g.step, torch.zeros_like(target[k]))
        flips.append(moved[k][flipped].flatten())
    every = torch.cat(flips)
    if every.numel() == 0:
        return dict(target)
    cut = (
        torch.quantile(every.float(), 1.0 - keep)
        if every.numel() < 16_000_000
        else every.float().kthvalue(max(1, int(every.numel() * (1.0 - keep)))).values
    )
    out = dict(target)
    for k in names:
        out[k] = torch.where(moved[k] >= cut, target[k], anchor[k])
    return out


@torch.no_grad()
def project_(model: nn.Module, boxes: dict[str, Intervals]) -> None:
    """Clamp ``model``'s boxed parameters into their boxes, in place."""
    for name, p in model.named_parameters():
        if name in boxes:
            p.copy_(boxes[name].project(p))


def nearest_in_boxes(anchor: State, boxes: dict[str, Intervals], fill: State) -> State:
    """The box point nearest to ``anchor`` for the boxed weights; ``fill``'s values elsewhere."""
    return {k: boxes[k].project(anchor[k]) if k in boxes else fill[k].clone() for k in fill}


def aggregation_jitter(runs: list[State], cohort: int, colluders: int) -> list[State]:
    """Perturbations shaped like the aggregate's error (module docstring).

    They are the benign runs' deviations from their mean, rescaled so that each coordinate's spread
    matches the expected aggregate error. Empty with fewer than two runs.
    """
    r = len(runs)
    if r < 2:
        return []
    honest = max(cohort - colluders, 1)
    factor = (honest / cohort) * (1.0 / honest + 1.0 / r) ** 0.5 * (r / (r - 1)) ** 0.5
    mean = {k: sum(run[k] for run in runs) / r for k in runs[0]}
    return [{k: factor * (run[k] - mean[k]) for k in run if run[k].is_floating_point()} for run in runs]


@torch.no_grad()
def _shift(model: nn.Module, delta: State | None, sign: float) -> None:
    if delta is None:
        return
    for name, p in model.named_parameters():
        if name in delta:
            p.add_(sign * delta[name].to(p.device, p.dtype))


def repair(
    model: nn.Module,
    data: ExampleSet,
    fp_loss: LossFn,
    full_loss: LossFn,
    boxes: dict[str, Intervals],
    cfg: TrainingConfig,
    steps: int,
    generator: torch.Generator,
    device: torch.device,
    lr: float,
    quant_weight: float,
    after_step: Callable[[int], None] | None = None,
    jitter: list[State] | None = None,
) -> float:
    """Projected descent of ``fp_loss`` inside ``boxes``; returns the mean FP loss.

    The parameters outside the boxes also descend ``quant_weight`` x ``full_loss``. With ``jitter``,
    each step's FP gradient is taken at the model plus one of those perturbations (random choice
    and sign, drawn from ``generator``): the FP behaviour is repaired for the neighbourhood where the
    aggregate will land, not one point.

    Parameters
    ----------
    model
        Repaired in place; its boxed parameters are projected into their boxes after every step.
    data
        The colluders' data, in minibatches of ``cfg.batch_size`` shuffled with ``generator``.
    fp_loss
        What the FP model must do (the attack's FP objective).
    full_loss
        The attack's full objective, applied to the non-boxed parameters only.
    boxes
        Per boxed state key, the intervals that keep its integers (``weight_boxes``).
    cfg
        The training section (optimizer, batch size), with ``lr`` overriding its learning rate.
    steps
        How many minibatch steps to take.
    generator
        The RNG of the shuffles and of the jitter draws.
    device
        Where the minibatches are moved.
    lr
        The repair's learning rate.
    quant_weight
        The weight of ``full_loss``; 0 turns that term off.
    after_step
        If given, called with the number of steps done after each step.
    jitter
        Perturbations from ``aggregation_jitter``, or None / empty for none.
    """
    model.train()
    free = [p for n, p in model.named_parameters() if n not in boxes]
    opt = make_optimizer(model.parameters(), cfg, lr)
    total, done = 0.0, 0
    for x, y in minibatches(data, cfg.batch_size, steps, generator, device):
        opt.zero_grad(set_to_none=True)
        extra = None
        if quant_weight > 0 and free:
            extra = torch.autograd.grad(quant_weight * full_loss(model, x, y), free, allow_unused=True)
        delta, sign = None, 1.0
        if jitter:
            delta = jitter[int(torch.randint(len(jitter), (1,), generator=generator))]
            sign = 1.0 if bool(torch.rand((), generator=generator) < 0.5) else -1.0
        _shift(model, delta, sign)
        loss = fp_loss(model, x, y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        _shift(model, delta, -sign)
        if extra is not None:
            for p, g in zip(free, extra):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
        opt.step()
        project_(model, boxes)
        total += float(loss.detach())
        done += 1
        if after_step is not None:
            after_step(done)
            model.train()
    return total / max(done, 1)


def integer_hit_rate(state: State, target: State, names: list[str], quantizer: WeightQuantizer) -> float:
    """Share of the weights of ``names`` whose integer under ``quantizer`` equals the one they have in ``target``.

    Each tensor is read on its own grid.
    """
    hits, total = 0, 0
    for k in names:
        a, b = integers(state[k].float(), quantizer), integers(target[k].float(), quantizer)
        hits += int((a == b).sum())
        total += a.numel()
    return hits / max(total, 1)
