"""Model-poisoning attacks whose update is crafted from benign updates.

The maths is in ``fl_sim.clients.model_poisoning``. The colluding client trains honestly; in attack
rounds the server-side adversary (``fl_sim.server.adversary``) replaces its reply with
``craft(known, ctx)``, where ``known`` are the benign updates the colluders know under the
scenario's collusion model: the round's honest updates (omniscient), the colluders' own honest
updates (aggregation_aware), or the client's own honest update (independent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch
from pydantic import BaseModel, Field
from torch import nn

from fl_sim.clients import model_poisoning as mp
from fl_sim.clients.honest import honest_for
from fl_sim.clients.registry import Behaviour, NoParams, TrainContext, register_attack
from fl_sim.config.schema import AttackConfig


@dataclass(frozen=True)
class CraftContext:
    """What the adversary knows of the round besides the benign updates."""

    num_replies: int  # n: updates the server will aggregate this round
    num_colluders: int  # f: colluders among them
    generator: torch.Generator
    rule: str = "fedavg"  # the server's rule spec as the scenario names it ("nnm+krum"): public, as Kerckhoffs has it
    full_knowledge: bool = False  # ``known`` holds the round's honest updates (omniscient), not estimates


_Params = NoParams
_Z_QUANTILE_CAP = (0.01, 0.99)


def alie_z_for(n: int, f: int) -> float:
    """Baruch et al.'s z for n replies and f colluders.

    Where their formula is undefined (the colluders are half the round or more, or alone), the
    quantile is capped to [0.01, 0.99].
    """
    try:
        return mp.alie_z(n, f)
    except ValueError:
        s = math.floor(n / 2 + 1) - f
        q = min(max((n - s) / n, _Z_QUANTILE_CAP[0]), _Z_QUANTILE_CAP[1])
        return NormalDist().inv_cdf(q)


class SignFlipParams(_Params):
    """Parameters of ``sign_flip``: the scale of the negated benign mean."""

    scale: float = Field(1.0, gt=0, description="the update sent is -scale x the known benign mean")


class GaussianParams(_Params):
    """Parameters of ``gaussian_noise``: the noise level relative to the benign mean."""

    sigma_ratio: float = Field(10.0, gt=0, description="noise std per coordinate, in units of the known benign mean's RMS")


class ALIEParams(_Params):
    """Parameters of ``alie``: an optional override of z."""

    z: float | None = Field(None, description="override z (default: Baruch et al.'s z for n replies and f colluders)")


class IPMParams(_Params):
    """Parameters of ``ipm``: the scale epsilon of the negated benign mean."""

    epsilon: float = Field(0.5, gt=0, description="the update sent is -epsilon x the known benign mean")


class MinMaxParams(_Params):
    """Parameters of ``min_max`` and ``min_sum``: the perturbation direction and the initial gamma of the search."""

    perturbation: mp.Perturbation = mp.Perturbation.STD
    gamma_init: float = Field(10.0, gt=0)


class Crafted(Behaviour):
    """A crafted attack: the client trains honestly, the adversary crafts the reply.

    It trains as an honest client of the scenario does (its honest update is part of what the
    colluders know).
    """

    crafted = True

    def train(self, model: nn.Module, ctx: TrainContext) -> dict[str, float]:
        """Train ``model`` as an honest client of the scenario does."""
        return honest_for(ctx.scenario).train(model, ctx)

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The malicious update (d,) from the (m, d) benign updates the colluders know."""
        raise NotImplementedError

    @classmethod
    def check(cls, attack: AttackConfig) -> None:
        """Reject ``boost``, which has no effect on a computed update."""
        if attack.boost != 1.0:
            raise ValueError("boost has no effect on crafted attacks (their update is computed, not trained); remove it")

    @classmethod
    def check_rule(cls, params: BaseModel, rule: str) -> None:
        """Raise ValueError if the attack cannot adapt to the scenario's rule spec ``rule`` (adaptive attacks only)."""


@register_attack("sign_flip", "sends the negated known benign mean update (x scale)")
class SignFlip(Crafted):
    """Sign flipping: the negated known benign mean, times ``scale``."""

    Params = SignFlipParams
    params: SignFlipParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """-scale x the mean of ``known``."""
        return mp.sign_flip(known, self.params.scale)


@register_attack("gaussian_noise", "sends Gaussian noise, std = sigma_ratio x RMS of the known benign mean (Fang et al. 2020)")
class GaussianNoise(Crafted):
    """Gaussian noise scaled to the known benign updates (Fang et al. 2020)."""

    Params = GaussianParams
    params: GaussianParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """A draw of N(0, sigma^2 I) from ``ctx.generator``, sigma = sigma_ratio x RMS of the mean of ``known``."""
        rms = float(known.double().mean(0).pow(2).mean().sqrt())
        return mp.gaussian_update(known.shape[1], self.params.sigma_ratio * rms, ctx.generator, known.dtype)


@register_attack("alie", "A Little Is Enough: mean - z std of the known benign updates (Baruch et al. 2019)")
class ALIE(Crafted):
    """A Little Is Enough (Baruch et al. 2019): the known benign mean shifted by z standard deviations."""

    Params = ALIEParams
    params: ALIEParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The mean of ``known`` minus z standard deviations (z: ``params.z``, else ``alie_z_for`` the round)."""
        return mp.alie(known, self.params.z if self.params.z is not None else alie_z_for(ctx.num_replies, ctx.num_colluders))


@register_attack("ipm", "inner product manipulation: -epsilon x the known benign mean (Xie et al. 2019)")
class IPM(Crafted):
    """Inner product manipulation (Xie et al. 2019): the negated known benign mean, times epsilon."""

    Params = IPMParams
    params: IPMParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """-epsilon x the mean of ``known``."""
        return mp.ipm(known, self.params.epsilon)


@register_attack("min_max", "Min-Max: mean + gamma p, max distance to benign <= benign max (Shejwalkar & Houmansadr 2021)")
class MinMax(Crafted):
    """Min-Max (Shejwalkar & Houmansadr 2021): mean + gamma p, no further from any benign update than they are apart."""

    Params = MinMaxParams
    params: MinMaxParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The Min-Max update on ``known`` (``model_poisoning.min_max``)."""
        return mp.min_max(known, self.params.perturbation, self.params.gamma_init)


@register_attack("min_sum", "Min-Sum: mean + gamma p, summed squared distance <= benign max (Shejwalkar & Houmansadr 2021)")
class MinSum(Crafted):
    """Min-Sum (Shejwalkar & Houmansadr 2021): mean + gamma p, its summed squared distance within the benign max."""

    Params = MinMaxParams
    params: MinMaxParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The Min-Sum update on ``known`` (``model_poisoning.min_sum``)."""
        return mp.min_sum(known, self.params.perturbation, self.params.gamma_init)
