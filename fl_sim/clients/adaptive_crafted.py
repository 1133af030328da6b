"""Adaptive crafted attacks: Optimal ALIE, Optimal IPM and Fang et al.'s attack, each searched against the rule.

The maths is in ``fl_sim.clients.adaptive_poisoning``; the rule is run through its replica
(``fl_sim.rule_replicas``), named by ``params.against`` (default ``strategy``: the scenario's own
rule with its pre-aggregators, which the colluders know). What they know of the honest updates
follows the collusion model: omniscient colluders use the round's honest updates (full knowledge);
otherwise they estimate them from their own honest updates (partial knowledge): Optimal ALIE / IPM
draw n - f stand-ins from a per-coordinate Gaussian fitted to them (ALIE's own model of the honest
updates), Fang uses them as its paper's partial-knowledge attacker does.
"""

from __future__ import annotations

from enum import Enum

import torch
from pydantic import BaseModel, Field

from fl_sim.clients import adaptive_poisoning as ap
from fl_sim.clients.crafted import CraftContext, Crafted, IPMParams, alie_z_for
from fl_sim.clients.registry import NoParams, register_attack
from fl_sim.rule_replicas import check_spec, simulate
from fl_sim.seeding import torch_generator


class AdaptiveParams(NoParams):
    """The rule an adaptive attack searches against."""

    against: str = Field(
        "strategy",
        description="the rule spec the search runs against ('krum', 'nnm+krum', ...), or 'strategy': the scenario's own",
    )

    def spec(self, ctx_rule: str) -> str:
        """The rule spec to search against, given the scenario's."""
        return ctx_rule if self.against == "strategy" else self.against


class OptimalALIEParams(AdaptiveParams):
    """Parameters of ``optimal_alie``."""

    max_z: float = Field(10.0, gt=0, description="z is searched in [0, max_z]")


class OptimalIPMParams(AdaptiveParams):
    """Parameters of ``optimal_ipm``."""

    max_epsilon: float = Field(20.0, gt=0, description="epsilon is searched in [0, max_epsilon]")


class FangVariant(str, Enum):  # noqa: UP042  (a StrEnum would change str() of the members)
    """Which of Fang et al.'s attacks: the Krum one, the median / trimmed-mean one, or by the rule."""

    AUTO = "auto"  # krum for Krum and Multi-Krum (behind any pre-aggregators), trimmed_mean otherwise
    KRUM = "krum"
    TRIMMED_MEAN = "trimmed_mean"


class FangParams(AdaptiveParams):
    """Parameters of ``fang``."""

    variant: FangVariant = FangVariant.AUTO
    b: float = Field(2.0, gt=1, description="full-knowledge median / trimmed-mean attack: how far beyond the extreme")


class Adaptive(Crafted):
    """A crafted attack that runs a replica of the rule it adapts to."""

    params: AdaptiveParams

    @classmethod
    def check_rule(cls, params: BaseModel, rule: str) -> None:
        """The rule searched against must have a replica."""
        against = params.spec(rule) if isinstance(params, AdaptiveParams) else rule
        try:
            check_spec(against)
        except ValueError as exc:
            where = "params.against" if against != rule else "the scenario's strategy (params.against: strategy)"
            raise ValueError(f"{where}: {exc}; set attack.params.against to one of them") from None

    def aggregator(self, ctx: CraftContext) -> ap.Aggregator:
        """The replica of the rule, with one fixed draw for randomised steps (so the search compares like with like)."""
        spec = self.params.spec(ctx.rule)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator))

        def aggregate(x: torch.Tensor) -> torch.Tensor:
            return simulate(spec, x, ctx.num_colluders, torch_generator(seed, "replica"))

        return aggregate

    @staticmethod
    def honest_estimate(known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The honest updates: ``known`` under full knowledge, else n - f Gaussian stand-ins fitted to it."""
        if ctx.full_knowledge:
            return known
        k = known.double()
        std = k.std(0, correction=1) if k.shape[0] > 1 else torch.zeros_like(k[0])
        count = max(ctx.num_replies - ctx.num_colluders, 1)
        z = torch.randn(count, k.shape[1], generator=ctx.generator, dtype=torch.float64, device=ctx.generator.device)
        return (k.mean(0) + z.to(k.device) * std).to(known.dtype)


@register_attack(
    "optimal_alie", "ALIE with z searched to push the rule's aggregate furthest from the honest mean (params.against)"
)
class OptimalALIE(Adaptive):
    """Optimal ALIE: mean - z std, z maximising the rule's deviation."""

    Params = OptimalALIEParams
    params: OptimalALIEParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The searched ALIE update."""
        honest = self.honest_estimate(known, ctx)
        fixed = alie_z_for(ctx.num_replies, ctx.num_colluders)  # never weaker than Baruch et al.'s own z
        return ap.optimal_alie(honest, ctx.num_colluders, self.aggregator(ctx), self.params.max_z, (fixed,))[0]


@register_attack(
    "optimal_ipm", "IPM with epsilon searched to push the rule's aggregate furthest from the honest mean (params.against)"
)
class OptimalIPM(Adaptive):
    """Optimal IPM: -epsilon mean, epsilon maximising the rule's deviation."""

    Params = OptimalIPMParams
    params: OptimalIPMParams

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """The searched IPM update."""
        honest = self.honest_estimate(known, ctx)
        fixed = IPMParams().epsilon  # never weaker than the fixed attack's default epsilon
        return ap.optimal_ipm(honest, ctx.num_colluders, self.aggregator(ctx), self.params.max_epsilon, (fixed,))[0]


@register_attack(
    "fang", "Fang et al. 2020 local model poisoning: the Krum attack or the median / trimmed-mean one (params.variant)"
)
class Fang(Adaptive):
    """Fang et al.'s attack, full knowledge under omniscient collusion, partial otherwise."""

    Params = FangParams
    params: FangParams

    def variant(self, ctx: CraftContext) -> FangVariant:
        """The variant to run: ``auto`` picks krum for Krum and Multi-Krum rules."""
        if self.params.variant is not FangVariant.AUTO:
            return self.params.variant
        rule = self.params.spec(ctx.rule).split("+")[-1].strip()
        return FangVariant.KRUM if rule in ("krum", "multikrum") else FangVariant.TRIMMED_MEAN

    def craft(self, known: torch.Tensor, ctx: CraftContext) -> torch.Tensor:
        """Fang's update for the round (each colluder of the median attack draws its own)."""
        if self.variant(ctx) is FangVariant.KRUM:
            return ap.fang_krum(known, ctx.num_colluders, self.aggregator(ctx))[0]
        if ctx.full_knowledge:
            return ap.fang_trimmed_full(known, ctx.generator, self.params.b)
        return ap.fang_trimmed_partial(known, ctx.generator)
