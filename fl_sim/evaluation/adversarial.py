"""L-infinity evasion attacks on images in [0, 1] (pure functions of a forward function).

FGSM (Goodfellow et al., 2015): x + eps * sign(grad_x L). PGD (Madry et al., 2018): a random start
in the eps-ball, then ``steps`` signed-gradient steps of size ``alpha`` projected back onto it.
Called inside a fake-quantized context they attack the quantized model directly, with gradients
through the straight-through estimator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]


def _input_grad(forward: Forward, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(forward(x), y)
        (g,) = torch.autograd.grad(loss, x)
    return g


def fgsm(forward: Forward, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM: one signed-gradient step of size ``eps``, clamped to [0, 1].

    Parameters
    ----------
    forward
        Inputs to logits; gradients flow through it (the straight-through estimator inside a fake-quantized context).
    x, y
        Images in [0, 1] and their true labels.
    eps
        L-infinity radius of the perturbation.

    Returns
    -------
    torch.Tensor
        The adversarial images, detached.
    """
    return (x + eps * _input_grad(forward, x, y).sign()).clamp(0.0, 1.0).detach()


def pgd(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    gen: torch.Generator,
    alpha: float | None = None,
) -> torch.Tensor:
    """PGD: a random start in the eps-ball, then ``steps`` signed-gradient steps projected back onto it.

    Parameters
    ----------
    forward
        Inputs to logits; gradients flow through it (the straight-through estimator inside a fake-quantized context).
    x, y
        Images in [0, 1] and their true labels.
    eps
        L-infinity radius of the ball.
    steps
        Number of gradient steps.
    gen
        Generator of the random start (drawn on the CPU, then moved to ``x``'s device).
    alpha
        Step size; ``eps / 4`` when None.

    Returns
    -------
    torch.Tensor
        The adversarial images, detached, in the eps-ball around ``x`` and in [0, 1].
    """
    alpha = eps / 4 if alpha is None else alpha
    start = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps
    adv = (x + start).clamp(0.0, 1.0)
    for _ in range(steps):
        adv = adv + alpha * _input_grad(forward, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0.0, 1.0)
    return adv.detach()
