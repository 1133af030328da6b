"""The wiring step: a validated scenario resolved once into the typed components of a run.

``config`` holds pure data. Here, and only here, names meet the registries: the dataset, model,
behaviours, strategy and protocols are looked up, the attack's and the strategy's parameters are
parsed by their own models, cross-stage checks run (text data needs a text model, Bulyan needs
n >= 4f+3, ...), the roles are drawn, and the strategy's assumed f is settled. The runner, the
clients and the server receive the result and never re-parse, re-validate or rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydantic import BaseModel, ValidationError

from fl_sim import components
from fl_sim.clients.crafted import Crafted
from fl_sim.clients.honest import honest_behaviour_name
from fl_sim.clients.plan import AttackPlan, ClientPlan
from fl_sim.clients.registry import Behaviour
from fl_sim.cohort import malicious_ids
from fl_sim.config.loader import load_scenario, validate_dict, with_absolute_data_path
from fl_sim.config.precision import Precision, parse_precision
from fl_sim.config.schema import AttackConfig, Collusion, Scenario
from fl_sim.data.text_sources import TEXT_SOURCES
from fl_sim.errors import UserError
from fl_sim.models.text import TEXT_MODELS
from fl_sim.preaggregators import PREAGGREGATORS, PreParams
from fl_sim.server.aggregation import STRATEGIES, DefensePlan, PrePlan
from fl_sim.server.routing import scenario_cohort_size


@dataclass(frozen=True)
class Wiring:
    """Everything a run uses, resolved from its scenario."""

    scenario: Scenario
    clients: ClientPlan  # roles, the attack and the honest behaviour, with parsed parameters
    defense: DefensePlan  # the strategy class, its parsed parameters, the assumed f
    precisions: tuple[Precision, ...]
    protocols: tuple[str, ...]

    @property
    def malicious(self) -> tuple[int, ...]:
        """The colluders' partition ids (ground truth: for the clients, the adversary and the records only)."""
        return self.clients.attack.malicious


def params_error(exc: ValidationError, where: str, owner: str) -> ValueError:
    """A component's parameter errors, located under ``where`` (e.g. ``attack.params``) and naming the component."""
    parts = []
    for e in exc.errors():
        loc = ".".join([where, *(str(p) for p in e["loc"])])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' for {owner}")
        else:
            parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    return ValueError("; ".join(parts))


def _parse(model: type[BaseModel], raw: dict[str, object], where: str, owner: str) -> BaseModel:
    try:
        return model(**raw)
    except ValidationError as exc:
        raise params_error(exc, where, owner) from None


def _named(kind: str, name: str, where: str) -> None:
    try:
        components.CATALOGUE[kind].get(name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _check_modality(s: Scenario) -> None:
    text_data, text_model = s.data.source in TEXT_SOURCES, s.model.name in TEXT_MODELS
    if text_data != text_model:
        what = "a text dataset" if text_data else "an image dataset"
        raise ValueError(
            f"model {s.model.name!r} does not fit data.source {s.data.source!r} ({what}): text datasets "
            f"({', '.join(sorted(TEXT_SOURCES))}) need a text model ({', '.join(sorted(TEXT_MODELS))})"
        )
    if text_model and not s.model.pretrained:
        raise ValueError(f"model {s.model.name!r} needs model.pretrained (a Hugging Face name, a folder, or 'minilm')")
    if not text_model and s.model.pretrained:
        raise ValueError(f"model.pretrained is for text models; model {s.model.name!r} is built from scratch")


def _attack_behaviour(a: AttackConfig, rule: str) -> tuple[type[Behaviour], BaseModel]:
    """The attack's class and parsed parameters, after the checks that need the class."""
    _named("attacks", a.behaviour, "attack.behaviour")
    if a.behaviour not in components.MALICIOUS:
        raise ValueError(
            f"attack.behaviour: {a.behaviour!r} is not an attack (attacks: {', '.join(sorted(components.MALICIOUS))})"
        )
    cls = components.BEHAVIOURS.get(a.behaviour)
    params = _parse(cls.Params, a.params, "attack.params", f"behaviour {a.behaviour!r}")
    if cls.needs_target_sample and a.target_sample is None:
        raise ValueError(f"attack: behaviour {a.behaviour!r} needs attack.target_sample (a test-set index)")
    if a.stealth.enabled and a.collusion is not Collusion.OMNISCIENT and not cls.crafted:
        raise ValueError(
            f"attack.stealth needs collusion 'omniscient' for behaviour {a.behaviour!r} (the bounds are taken "
            "against the benign updates; client-side QAT attacks bound their norm with params.max_norm_ratio)"
        )
    try:
        cls.check(a)
        if issubclass(cls, Crafted):
            cls.check_rule(params, rule)
    except ValueError as exc:
        raise ValueError(f"attack: {exc}") from None
    return cls, params


def _pre_steps(s: Scenario, rule_f: int | None) -> tuple[tuple[PrePlan, ...], int]:
    """The strategy's pre-aggregation steps, resolved in order, and how many updates reach the rule."""
    n, plans = scenario_cohort_size(s), []
    for i, step in enumerate(s.strategy.pre):
        where = f"strategy.pre[{i}]"
        _named("preaggregators", step.name, f"{where}.name")
        cls = PREAGGREGATORS.get(step.name)
        params = cast(PreParams, _parse(cls.Params, step.params, f"{where}.params", f"pre-aggregator {step.name!r}"))
        f = None
        if cls.uses_f():
            given = getattr(params, "num_malicious", None)
            f = int(given) if given is not None else (rule_f if rule_f is not None else s.attack.num_malicious)
        try:
            cls.check(params, f, n)
        except ValueError as exc:
            raise ValueError(f"{where} ({step.name!r}): {exc}") from None
        plans.append(PrePlan(cls, params, f, step.name))
        n = cls.outputs(params, n)
    return tuple(plans), n


def _defense(s: Scenario) -> DefensePlan:
    _named("strategies", s.strategy.name, "strategy.name")
    cls = STRATEGIES.get(s.strategy.name)
    params = _parse(cls.Params, s.strategy.params, "strategy.params", f"strategy {s.strategy.name!r}")
    assumed_f, from_truth = None, False
    if cls.uses_f():
        given = getattr(params, "num_malicious", None)
        assumed_f, from_truth = (s.attack.num_malicious, True) if given is None else (int(given), False)
    pre, inputs = _pre_steps(s, assumed_f)
    try:
        cls.check(params, assumed_f, inputs)
    except ValueError as exc:
        raise ValueError(f"strategy {s.strategy.name!r}: {exc}") from None
    return DefensePlan(cls, params, assumed_f, from_truth, pre, inputs)


def wire(s: Scenario) -> Wiring:
    """Resolve ``s`` into its components; ValueError naming the key and the problem otherwise."""
    _named("datasets", s.data.source, "data.source")
    _named("models", s.model.name, "model.name")
    for name in s.evaluation.protocols:
        _named("protocols", name, "evaluation.protocols")
    for name in s.evaluation.mitigation.methods:
        _named("mitigations", name, "evaluation.mitigation.methods")
    _check_modality(s)
    attack_cls, attack_params = _attack_behaviour(s.attack, s.strategy.spec)
    honest = components.BEHAVIOURS.get(honest_behaviour_name(s))
    size = scenario_cohort_size(s)
    roles = tuple(malicious_ids(s.seed, s.federation.num_clients, s.attack.num_malicious))
    clients = ClientPlan(s, AttackPlan(roles, attack_cls, attack_params), honest, honest.Params(), size)
    return Wiring(
        s, clients, _defense(s), tuple(parse_precision(p) for p in s.evaluation.precisions), tuple(s.evaluation.protocols)
    )


def wire_or_fail(s: Scenario, origin: str) -> Wiring:
    """:func:`wire`, its errors turned into one-line ``UserError`` naming ``origin``."""
    try:
        return wire(s)
    except ValueError as exc:
        raise UserError(f"{origin}: {exc}") from None


def load(path: str | Path, overrides: list[str] | None = None) -> Wiring:
    """Read, override, validate and wire a scenario file (one-line ``UserError`` on any problem).

    ``data.path`` is made absolute: client processes on other nodes run in other directories.
    """
    return wire_or_fail(with_absolute_data_path(load_scenario(path, overrides)), str(path))


def from_dict(raw: dict[str, object], origin: str) -> Wiring:
    """Validate and wire a raw scenario mapping (one-line ``UserError`` on any problem)."""
    return wire_or_fail(validate_dict(raw, origin), origin)
