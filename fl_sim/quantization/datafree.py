"""Data-free calibration and disagreement probing with a generator, for a server that holds no data.

After AdaSG (arXiv 2302.09572) and AdaDFQ (arXiv 2303.06869); ../REFERENCE §5.

A class-conditional generator G(z, y) is trained against the FP model P and its quantized twin Q
(Q's activation ranges taken per batch while G trains, since no calibration exists yet):
- calibration mode: G minimises CE(P(x), y) + margin(H') + beta * L_bal, where
  p_ds = softmax(z_P - z_Q), p_as = softmax(z_P + z_Q), L_bal = a_ds CE(p_ds, y) + a_as CE(p_as, y),
  H' = entropy(p_ds) / log(C) and margin(H') = relu(lambda_l - H') + relu(H' - lambda_u): samples
  P recognises, on which P and Q disagree neither too little nor too much (AdaDFQ's margin);
- probe mode: G maximises KL(P(x) || Q(x)) while P still recognises class y, so its samples are
  inputs on which the quantized model departs most from the FP one (a backdoor hint).
Simplifications, stated: P has no BatchNorm here, so the BN-statistics loss is absent; Q is not
fine-tuned (post-training quantization), only G is trained (Adam 1e-3, betas 0.5/0.999).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

QContext = Callable[[], AbstractContextManager[object]]  # returns a context manager in which the model computes Q


class ConditionalGenerator(nn.Module):
    """z (latent) + label embedding -> image in [0, 1] of ``shape`` (C, H, W), H and W divisible by 4."""

    def __init__(self, num_classes: int, shape: tuple[int, int, int], latent: int = 64) -> None:
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"generator needs H and W divisible by 4, got {shape}")
        self.latent, self.h4, self.w4 = latent, h // 4, w // 4
        self.embed = nn.Embedding(num_classes, latent)
        self.fc = nn.Linear(latent, 64 * self.h4 * self.w4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(64),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, c, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Generate one image per row: latent ``z`` (N, latent) times the embedding of label ``y`` (N,)."""
        h = self.fc(z * self.embed(y)).view(-1, 64, self.h4, self.w4)
        return cast(torch.Tensor, self.net(h))


@dataclass(frozen=True)
class GeneratorConfig:
    """How the generator trains: ``steps`` Adam steps of ``batch_size`` samples at learning rate ``lr``.

    The other fields weigh the calibration-mode loss (see the module docstring): ``beta`` scales
    L_bal, ``a_ds`` and ``a_as`` weigh its two cross-entropies, and [``lambda_l``, ``lambda_u``] is
    the band of normalised entropy H' outside which the margin term penalises.
    """

    steps: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1.0
    a_ds: float = 0.1
    a_as: float = 1.0
    lambda_l: float = 0.3
    lambda_u: float = 0.8


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Return the entropy of each row's softmax of (N, C) ``logits``, divided by log(C) (so in [0, 1])."""
    p = F.softmax(logits, dim=1)
    return -(p * F.log_softmax(logits, dim=1)).sum(1) / math.log(logits.shape[1])


def calibration_loss(zp: torch.Tensor, zq: torch.Tensor, y: torch.Tensor, cfg: GeneratorConfig) -> torch.Tensor:
    """Return the calibration-mode loss CE(P(x), y) + margin(H') + beta * L_bal (see the module docstring).

    Parameters
    ----------
    zp, zq : torch.Tensor
        The (N, C) logits of the FP model P and of its quantized twin Q on the generated batch.
    y : torch.Tensor
        The (N,) labels the batch was generated for.
    cfg : GeneratorConfig
        The loss weights; H' is the batch mean of the normalised entropy of softmax(zp - zq).

    Returns
    -------
    torch.Tensor
        The scalar loss that the generator minimises.
    """
    h = normalised_entropy(zp - zq).mean()
    margin = F.relu(cfg.lambda_l - h) + F.relu(h - cfg.lambda_u)
    bal = cfg.a_ds * F.cross_entropy(zp - zq, y) + cfg.a_as * F.cross_entropy(zp + zq, y)
    return F.cross_entropy(zp, y) + margin + cfg.beta * bal


def probe_loss(zp: torch.Tensor, zq: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the probe-mode loss CE(P(x), y) - KL(P(x) || Q(x)) (batch mean), which the generator minimises.

    ``zp`` and ``zq`` are the (N, C) logits of P and Q, ``y`` the (N,) labels the batch was generated for.
    """
    kl = F.kl_div(F.log_softmax(zq, 1), F.log_softmax(zp, 1), reduction="batchmean", log_target=True)
    return F.cross_entropy(zp, y) - kl


def train_generator(
    model: nn.Module,
    quantized: QContext,
    num_classes: int,
    shape: tuple[int, int, int],
    probe: bool,
    cfg: GeneratorConfig,
    gen: torch.Generator,
    device: torch.device,
) -> ConditionalGenerator:
    """Train G against P = ``model`` and Q = ``model`` inside ``quantized()``; P and Q stay fixed.

    Parameters
    ----------
    model : nn.Module
        The FP model P; it is put in eval mode, and every parameter's ``requires_grad`` is set back
        to True at the end.
    quantized : QContext
        Returns a fresh context manager inside which ``model`` computes Q (entered once per step).
    num_classes : int
        The number of classes G is conditioned on.
    shape : tuple[int, int, int]
        One image's shape (C, H, W), H and W divisible by 4.
    probe : bool
        True: probe mode (maximise the disagreement); False: calibration mode.
    cfg : GeneratorConfig
        The training settings and loss weights.
    gen : torch.Generator
        Draws the latents and labels, and the seed of the global RNG for G's initial weights.
    device : torch.device
        Where G and its batches live.

    Returns
    -------
    ConditionalGenerator
        The trained generator, in eval mode.
    """
    with torch.random.fork_rng(devices=[]):  # G's initial weights from ``gen``; the global RNG is left as it was
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
        g = ConditionalGenerator(num_classes, shape)
    g = g.to(device)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(cfg.steps):
            z = torch.randn(cfg.batch_size, g.latent, generator=gen).to(device)
            y = torch.randint(num_classes, (cfg.batch_size,), generator=gen).to(device)
            x = g(z, y)
            zp = model(x)
            with quantized():
                zq = model(x)
            loss = probe_loss(zp, zq, y) if probe else calibration_loss(zp, zq, y, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return g.eval()


@torch.no_grad()
def sample(
    g: ConditionalGenerator,
    n: int,
    num_classes: int,
    gen: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` generated inputs and the labels they were conditioned on (balanced over classes)."""
    y = (torch.arange(n) % num_classes).to(device)
    z = torch.randn(n, g.latent, generator=gen).to(device)
    return g(z, y), y
