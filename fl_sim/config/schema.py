"""The scenario schema, version 1. Every section is a frozen pydantic model that rejects unknown
keys by name; component names (dataset, model, behaviour, strategy) are checked against their
registries, and component parameters against the component's own parameter model."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fl_sim.config.precision import MAX_BITS, MIN_BITS, ActivationRange, Granularity, Observer, parse_precision

SCHEMA_VERSION = 1


def _params_error(exc: ValidationError, owner: str) -> ValueError:
    """A component's parameter errors, located under ``params`` and naming the component."""
    parts = []
    for e in exc.errors():
        loc = ".".join(["params", *(str(p) for p in e["loc"])])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' for {owner}")
        else:
            parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    return ValueError("; ".join(parts))


def _registered(kind: str, name: str) -> str:
    """``name`` if the ``kind`` registry holds it; ValueError listing the known names otherwise."""
    from fl_sim.components import CATALOGUE

    CATALOGUE[kind].get(name)
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class PartitionKind(str, Enum):
    IID = "iid"
    DIRICHLET = "dirichlet"
    PATHOLOGICAL = "pathological"


class DataConfig(Strict):
    source: str = "digits"
    path: str | None = None
    hub_name: str | None = None
    partitioner: PartitionKind = PartitionKind.IID
    alpha: float = Field(0.5, gt=0)
    classes_per_client: int = Field(2, ge=1)
    calibration_size: int = Field(256, ge=1)
    max_train_examples: int | None = Field(None, ge=1)
    max_test_examples: int | None = Field(None, ge=1)
    tokenizer: str | None = Field(None, description="text datasets: the tokenizer (default: the text model's model.pretrained)")
    max_length: int = Field(64, ge=8, le=512, description="text datasets: tokens per sequence (truncated or padded)")

    @model_validator(mode="after")
    def _path_exists(self) -> "DataConfig":
        from pathlib import Path

        if self.path is not None and not Path(self.path).expanduser().is_dir():
            raise ValueError(f"path: folder not found: {self.path}")
        return self

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        return _registered("datasets", v)


class ModelConfig(Strict):
    name: str = "mnist_cnn"
    pretrained: str | None = Field(None, description="text models: a Hugging Face name, a folder, or 'minilm' (offline)")

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        return _registered("models", v)


class ClientResources(Strict):
    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)


class GuardConfig(Strict):
    """Server-side screening of replies (fl_sim/server/payload_guard.py)."""

    max_norm_ratio: float = Field(100.0, gt=1, description="reject updates whose norm exceeds this x the round median")
    max_examples_ratio: float = Field(10.0, ge=1, description="cap reported example counts at this x the round median")


class FaultKind(str, Enum):
    EXCEPTION = "exception"  # the client raises
    TIMEOUT = "timeout"  # the client stalls past round_timeout_s
    DROP = "drop"  # the client trains, but its reply is lost on the way to the server


class FaultConfig(Strict):
    """Injected client faults: each (round, client) fails with probability ``rate`` (seeded)."""

    rate: float = Field(0.0, ge=0, le=1)
    kind: FaultKind = FaultKind.EXCEPTION


class FederationConfig(Strict):
    num_clients: int = Field(10, ge=2)
    rounds: int = Field(5, ge=1)
    fraction_train: float = Field(1.0, gt=0, le=1)
    min_train_clients: int = Field(2, ge=1)
    client_resources: ClientResources = Field(default_factory=ClientResources)
    round_timeout_s: float = Field(3600.0, gt=0, description="the server waits this long for a round's replies")
    guard: GuardConfig = Field(default_factory=GuardConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig)


class Optimizer(str, Enum):
    SGD = "sgd"
    ADAM = "adam"


class QATConfig(Strict):
    enabled: bool = False
    bits: int = Field(8, ge=MIN_BITS, le=MAX_BITS)


class TrainingConfig(Strict):
    optimizer: Optimizer = Optimizer.SGD
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    qat: QATConfig = Field(default_factory=QATConfig)


class Collusion(str, Enum):
    """How the colluders coordinate (README "Collusion model")."""

    INDEPENDENT = "independent"  # each trains on its own data toward the shared goal (client side)
    AGGREGATION_AWARE = "aggregation_aware"  # pooled data, estimated benign mean, steer the FedAvg aggregate
    OMNISCIENT = "omniscient"  # a server-side adversary sees the round's benign updates and crafts theirs


class TriggerConfig(Strict):
    """Images: a ``size`` x ``size`` patch ``margin`` pixels from the bottom-right corner at ``value``.
    Text: the token(s) of ``phrase`` inserted right after [CLS]."""

    size: int = Field(4, ge=1)
    margin: int = Field(1, ge=0)
    value: float = 1.0
    phrase: str = Field("cf", min_length=1, description="text trigger (a rare token, as in Kurita et al. 2020)")


class StealthConfig(Strict):
    """An adaptive attacker's bounds on each malicious update, applied by the server-side adversary
    against the benign updates it knows (fl_sim/server/adversary.py)."""

    max_norm_ratio: float | None = Field(None, gt=0, description="update norm <= this x the median benign update norm "
                                         "(slips past norm screening / clipping)")
    max_distance_ratio: float | None = Field(None, gt=0, description="distance to the benign mean <= this x the largest "
                                             "benign distance to it (slips past distance-based rules: Krum, Multi-Krum)")

    @property
    def enabled(self) -> bool:
        return self.max_norm_ratio is not None or self.max_distance_ratio is not None


class AttackConfig(Strict):
    """The colluders: how many, what they run, when, and what they share."""

    behaviour: str = "qat_backdoor"
    num_malicious: int = Field(0, ge=0)
    start_round: int = Field(1, ge=1)
    stop_round: int | None = Field(None, ge=1)
    every: int = Field(1, ge=1, description="attack every k-th round from start_round")
    probability: float = Field(1.0, gt=0, le=1, description="attack an eligible round with this probability (seeded)")
    boost: float = Field(1.0, gt=0)
    collusion: Collusion = Collusion.INDEPENDENT
    stealth: StealthConfig = Field(default_factory=StealthConfig)
    target_label: int = Field(0, ge=0)
    target_sample: int | None = Field(None, ge=0, description="index of the test image the targeted-sample attack "
                                      "wants classified as target_label")
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "AttackConfig":
        from fl_sim.components import BEHAVIOURS, MALICIOUS

        BEHAVIOURS.get(self.behaviour)
        if self.behaviour not in MALICIOUS:
            raise ValueError(f"behaviour {self.behaviour!r} is not an attack (attacks: {', '.join(sorted(MALICIOUS))})")
        try:
            self.behaviour_params()
        except ValidationError as exc:
            raise _params_error(exc, f"behaviour {self.behaviour!r}") from None
        if self.stop_round is not None and self.stop_round < self.start_round:
            raise ValueError(f"stop_round {self.stop_round} is before start_round {self.start_round}")
        cls = BEHAVIOURS.get(self.behaviour)
        if getattr(cls, "needs_target_sample", False) and self.target_sample is None:
            raise ValueError(f"behaviour {self.behaviour!r} needs attack.target_sample (a test-set index)")
        if self.stealth.enabled and self.collusion is not Collusion.OMNISCIENT and not getattr(cls, "crafted", False):
            raise ValueError(f"attack.stealth needs collusion 'omniscient' for behaviour {self.behaviour!r} (the bounds are taken "
                             "against the benign updates; client-side QAT attacks bound their norm with params.max_norm_ratio)")
        if self.stealth.max_distance_ratio is not None and self.collusion is Collusion.INDEPENDENT:
            raise ValueError("attack.stealth.max_distance_ratio needs coordinated colluders (aggregation_aware or omniscient): "
                             "an independent colluder knows one benign update, whose spread is zero")
        cls.check(self)
        if self.collusion is Collusion.OMNISCIENT and self.boost != 1.0:
            raise ValueError("boost has no effect with collusion 'omniscient' (the adversary scales the update exactly); remove it")
        return self

    def behaviour_params(self) -> BaseModel:
        """``params`` validated by the behaviour's own parameter model."""
        from fl_sim.components import BEHAVIOURS

        return BEHAVIOURS.get(self.behaviour).Params(**self.params)

    def active(self, server_round: int, seed: int) -> bool:
        """Whether the colluders attack in ``server_round``: inside [start_round, stop_round], on
        every ``every``-th round from start_round, and with ``probability`` (a seeded draw per round)."""
        if server_round < self.start_round or (self.stop_round is not None and server_round > self.stop_round):
            return False
        if (server_round - self.start_round) % self.every:
            return False
        if self.probability >= 1.0:
            return True
        from fl_sim.seeding import numpy_rng

        return bool(numpy_rng(seed, "attack-schedule", server_round).random() < self.probability)


class StrategyConfig(Strict):
    name: str = "fedavg"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "StrategyConfig":
        try:
            self.strategy_params()
        except ValidationError as exc:
            raise _params_error(exc, f"strategy {self.name!r}") from None
        return self

    def strategy_params(self) -> BaseModel:
        from fl_sim.components import STRATEGIES

        return STRATEGIES.get(self.name).Params(**self.params)


class Distribution(str, Enum):
    """Where a worst-case calibration set is drawn from (../REFERENCE §3)."""

    IN_DISTRIBUTION = "in_distribution"  # uniform over the clients' pooled data
    IMBALANCED = "imbalanced"  # only a few random classes (the others missing)
    CORRUPTED = "corrupted"  # in-distribution plus Gaussian noise and blur
    CLIENT = "client"  # one random client's data only


class WorstCaseConfig(Strict):
    draws: int = Field(50, ge=1, description="K: random calibration sets")
    sizes: list[int] = Field(default_factory=lambda: [32, 256], min_length=1)
    distributions: list[Distribution] = Field(default_factory=lambda: list(Distribution), min_length=1)
    client_examples: int = Field(200, ge=1, description="examples per client for per-client accuracy")

    @field_validator("sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"sizes must be positive, got {v}")
        return v


class AdversarialAttack(str, Enum):
    FGSM = "fgsm"
    PGD = "pgd"


class RobustnessConfig(Strict):
    attacks: list[AdversarialAttack] = Field(default_factory=lambda: list(AdversarialAttack), min_length=1)
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.2], min_length=1)
    examples: int = Field(500, ge=1, description="test examples attacked")
    pgd_steps: int = Field(10, ge=1)

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, v: list[float]) -> list[float]:
        if any(not 0 < e <= 1 for e in v):
            raise ValueError(f"epsilons must be in (0, 1], got {v}")
        return v


class Recipe(str, Enum):
    """TextAttack's word-substitution recipes (run through TextAttack when it and its resources are there)."""

    TEXTFOOLER = "textfooler"
    PWWS = "pwws"
    PSO = "pso"


class WordAttackSettings(Strict):
    """Word-substitution attacks on text models (protocol ``word_substitution``)."""

    examples: int = Field(200, ge=1, description="test examples attacked")
    candidates: int = Field(15, ge=1, description="embedding-neighbour substitutes tried per word")
    min_similarity: float = Field(0.5, ge=-1, lt=1, description="least cosine similarity of a substitute's embedding")
    max_perturb: float = Field(0.25, gt=0, le=1, description="largest share of an example's words changed")
    recipes: list[Recipe] = Field(default_factory=list, description="TextAttack recipes to run as well (need textattack "
                                  "and its downloadable resources)")


class DataFreeConfig(Strict):
    steps: int = Field(200, ge=1, description="generator training steps")
    batch_size: int = Field(64, ge=2)
    samples: int = Field(256, ge=1, description="generated calibration / probe samples")


class MitigationConfig(Strict):
    bits: list[int] = Field(default_factory=lambda: [4], min_length=1, description="precisions the mitigations are measured at")
    keep: list[float] = Field(default_factory=lambda: [0.0035, 0.01], min_length=1, description="TaCQ: fractions of weights kept in 16-bit")
    finetune_steps: int = Field(100, ge=1, description="server-side fine-tune: minibatch steps on the calibration set")
    finetune_lr: float = Field(0.01, gt=0)

    @field_validator("bits")
    @classmethod
    def _bits(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not MIN_BITS <= b <= 8]
        if bad:
            raise ValueError(f"mitigation bits must be in {MIN_BITS}..8 (tacq<b> needs b <= 8), got {bad}")
        return v

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: list[float]) -> list[float]:
        if any(not 0 < k < 1 for k in v):
            raise ValueError(f"keep fractions must be in (0, 1), got {v}")
        return v


class RoundingMarginConfig(Strict):
    """Protocol ``rounding_margin``: weight noise before rounding, in steps of each layer's grid."""

    sigmas: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.1, 0.25], min_length=1)
    draws: int = Field(5, ge=1, description="K: random noise draws per sigma and precision")
    bins: int = Field(10, ge=2, description="histogram bins of the distance to the nearest boundary, over [0, 0.5] steps")

    @field_validator("sigmas")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v):
            raise ValueError(f"sigmas must be positive (in steps), got {v}")
        return v


class QuantScope(str, Enum):
    WEIGHTS = "weights"
    WEIGHTS_ACTIVATIONS = "weights_activations"


class EvaluationConfig(Strict):
    precisions: list[str] = Field(default_factory=lambda: ["fp32", "int8", "int4"], min_length=1)
    granularity: Granularity = Granularity.PER_TENSOR
    weight_symmetric: bool = True
    act_symmetric: bool = False
    scope: QuantScope = QuantScope.WEIGHTS_ACTIVATIONS
    activations: ActivationRange = ActivationRange.CALIBRATED
    observer: Observer = Observer.MINMAX
    percentile: float = Field(99.99, gt=50, le=100)
    tacq_keep: float = Field(0.0035, ge=0, lt=1, description="tacq<b>: fraction of weights kept in 16-bit")
    protocols: list[str] = Field(default_factory=lambda: ["precisions"], min_length=1)
    worst_case: WorstCaseConfig = WorstCaseConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    word_attack: WordAttackSettings = WordAttackSettings()
    data_free: DataFreeConfig = DataFreeConfig()
    mitigation: MitigationConfig = MitigationConfig()
    rounding_margin: RoundingMarginConfig = RoundingMarginConfig()
    every_n_rounds: int = Field(0, ge=0)
    batch_size: int = Field(1000, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, v: list[str]) -> list[str]:
        for p in v:
            parse_precision(p)
        if len(set(v)) != len(v):
            raise ValueError(f"precisions repeat a name: {v}")
        return v

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, v: list[str]) -> list[str]:
        return [_registered("protocols", p) for p in v]


class Scenario(Strict):
    """A whole federated experiment."""

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(0, ge=0)
    output_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="before")
    @classmethod
    def _tokenizer_from_model(cls, raw: Any) -> Any:
        """A text dataset is tokenized by its model's tokenizer unless data.tokenizer says otherwise."""
        if not isinstance(raw, dict):
            return raw
        model, data = raw.get("model"), raw.get("data")
        if isinstance(model, dict) and model.get("pretrained") and isinstance(data, dict) and not data.get("tokenizer"):
            return {**raw, "data": {**data, "tokenizer": model["pretrained"]}}
        return raw

    @model_validator(mode="after")
    def _modality(self) -> "Scenario":
        from fl_sim.data.text_sources import TEXT_SOURCES
        from fl_sim.models.text import TEXT_MODELS

        text_data, text_model = self.data.source in TEXT_SOURCES, self.model.name in TEXT_MODELS
        if text_data != text_model:
            what = "a text dataset" if text_data else "an image dataset"
            raise ValueError(f"model {self.model.name!r} does not fit data.source {self.data.source!r} ({what}): "
                             f"text datasets ({', '.join(sorted(TEXT_SOURCES))}) need a text model ({', '.join(sorted(TEXT_MODELS))})")
        if text_model and not self.model.pretrained:
            raise ValueError(f"model {self.model.name!r} needs model.pretrained (a Hugging Face name, a folder, or 'minilm')")
        if not text_model and self.model.pretrained:
            raise ValueError(f"model.pretrained is for text models; model {self.model.name!r} is built from scratch")
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> "Scenario":
        n, m = self.federation.num_clients, self.attack.num_malicious
        if m > n:
            raise ValueError(f"attack.num_malicious ({m}) is more than federation.num_clients ({n})")
        if self.federation.min_train_clients > n:
            raise ValueError(f"federation.min_train_clients ({self.federation.min_train_clients}) is more than num_clients ({n})")
        if self.attack.stop_round is not None and self.attack.start_round > self.federation.rounds:
            raise ValueError(f"attack.start_round {self.attack.start_round} is after the last round {self.federation.rounds}")
        return self
