"""The local optimisation loop shared by every behaviour: minibatch steps on a loss function."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fl_sim.config.schema import Optimizer, TrainingConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.progress import progress

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``model``'s logits on ``x`` against the labels ``y`` (the honest loss)."""
    return F.cross_entropy(model(x), y)


def make_optimizer(params: Iterable[torch.Tensor], cfg: TrainingConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names (Adam, else SGD with momentum) over ``params``.

    Parameters
    ----------
    params
        The tensors to optimise (usually ``model.parameters()``).
    cfg
        The training section: optimizer, learning rate, momentum, weight decay.
    lr
        Overrides ``cfg.lr`` when given.
    """
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer is Optimizer.ADAM:
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Minibatch steps in one pass over ``n`` examples (the last batch may be short; at least one)."""
    return max(1, math.ceil(n / batch_size))


def minibatches(
    data: ExampleSet, batch_size: int, steps: int, generator: torch.Generator, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Exactly ``steps`` minibatches over reshuffled passes of ``data``, moved to ``device``.

    Each pass draws a new permutation from ``generator``, only when the pass is needed.
    """
    done = 0
    while done < steps:
        perm = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), batch_size):
            if done == steps:
                return
            idx = perm[start : start + batch_size]
            yield data.x[idx].to(device), data.y[idx].to(device)
            done += 1


def train_steps(
    model: nn.Module,
    data: ExampleSet,
    loss_fn: LossFn,
    cfg: TrainingConfig,
    steps: int,
    generator: torch.Generator,
    device: torch.device,
    lr: float | None = None,
    after_step: Callable[[int], None] | None = None,
    desc: str | None = None,
) -> float:
    """Run ``steps`` minibatch steps over reshuffled passes of ``data``; return the mean loss.

    Parameters
    ----------
    model
        Trained in place (left in train mode).
    data
        The examples; minibatches of ``cfg.batch_size`` are drawn with ``generator`` (``minibatches``).
    loss_fn
        The loss of ``model`` on a minibatch.
    cfg
        The training section: batch size and optimizer (``make_optimizer``).
    steps
        How many minibatch steps to take.
    generator
        The RNG of the shuffles.
    device
        Where the minibatches are moved.
    lr
        Overrides ``cfg.lr`` when given.
    after_step
        If given, called with the number of steps done after each step (then the model is put back
        in train mode).
    desc
        If given, a progress bar of that name (``fl_sim.progress``: only on a terminal).

    Returns
    -------
    float
        The mean minibatch loss.
    """
    model.train()
    opt = make_optimizer(model.parameters(), cfg, lr)
    total, done = 0.0, 0
    batches = minibatches(data, cfg.batch_size, steps, generator, device)
    for x, y in batches if desc is None else progress(batches, desc, total=steps, unit="step"):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, x, y)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        opt.step()
        total += float(loss.detach())
        done += 1
        if after_step is not None:
            after_step(done)
            model.train()
    return total / max(done, 1)
