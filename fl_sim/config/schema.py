"""The scenario schema, version 1: pure typed data (no torch, no Flower, no other stage).

Every section is a frozen pydantic model that rejects unknown keys by name. Component names
(dataset, model, behaviour, strategy, protocols) and component parameters are resolved against the
registries by the wiring step (``fl_sim.wiring``), once.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from fl_sim.config.precision import MAX_BITS, MIN_BITS, ActivationRange, Granularity, Observer, parse_precision

SCHEMA_VERSION = 1


class Strict(BaseModel):
    """Base of every scenario section: frozen, and unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, use_attribute_docstrings=True)


class PartitionKind(str, Enum):
    """How the training data is split across clients: IID, Dirichlet(alpha) or pathological (a few classes each)."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    PATHOLOGICAL = "pathological"


class DataConfig(Strict):
    """The dataset, how it is partitioned across clients, the server's calibration set size and the text settings."""

    source: str = "digits"
    """the dataset: `digits` (bundled), `idx` (an MNIST-layout folder at `path`), `hub` (`hub_name`), or a text source."""
    path: str | None = None
    """the dataset's folder (idx and local text sources); relative paths resolve against where fl-sim runs."""
    hub_name: str | None = None
    """a Hugging Face dataset name (source `hub`)."""
    partitioner: PartitionKind = PartitionKind.IID
    """how the training data is split across clients."""
    alpha: float = Field(0.5, gt=0)
    """Dirichlet concentration (partitioner `dirichlet`): smaller is more heterogeneous."""
    classes_per_client: int = Field(2, ge=1)
    """classes each client holds (partitioner `pathological`)."""
    calibration_size: int = Field(256, ge=1)
    """the server's own clean examples (calibration, root data), never given to clients."""
    max_train_examples: int | None = Field(None, ge=1)
    """cap on the training examples used (all if unset)."""
    max_test_examples: int | None = Field(None, ge=1)
    """cap on the test examples evaluated (all if unset)."""
    tokenizer: str | None = Field(None, description="text datasets: the tokenizer (default: the text model's model.pretrained)")
    max_length: int = Field(64, ge=8, le=512, description="text datasets: tokens per sequence (truncated or padded)")

    @model_validator(mode="after")
    def _path_exists(self) -> DataConfig:
        from pathlib import Path

        if self.path is not None and not Path(self.path).expanduser().is_dir():
            raise ValueError(f"path: folder not found: {self.path}")
        return self


class ModelConfig(Strict):
    """The model architecture (a registered name) and, for text models, the pretrained weights."""

    name: str = "mnist_cnn"
    """the architecture: `mnist_cnn`, `cifar_cnn` or `hf_text` (`fl-sim list models`)."""
    pretrained: str | None = Field(None, description="text models: a Hugging Face name, a folder, or 'minilm' (offline)")


class ClientResources(Strict):
    """The Ray resources reserved for each client: CPUs and GPUs."""

    num_cpus: float = Field(1.0, gt=0)
    """CPUs each client reserves on Ray."""
    num_gpus: float = Field(0.0, ge=0)
    """GPUs (fractions allowed) each client reserves on Ray."""


class GuardConfig(Strict):
    """Server-side screening of replies (fl_sim/server/payload_guard.py)."""

    max_norm_ratio: float = Field(100.0, gt=1, description="reject updates whose norm exceeds this x the round median")
    max_examples_ratio: float = Field(10.0, ge=1, description="cap reported example counts at this x the round median")


class FaultKind(str, Enum):
    """How an injected fault shows: the client raises, stalls, or its reply is lost."""

    EXCEPTION = "exception"  # the client raises
    TIMEOUT = "timeout"  # the client stalls past round_timeout_s
    DROP = "drop"  # the client trains, but its reply is lost on the way to the server


class FaultConfig(Strict):
    """Injected client faults: each (round, client) fails with probability ``rate`` (seeded)."""

    rate: float = Field(0.0, ge=0, le=1)
    """probability that a client fails in a round (seeded per round and client)."""
    kind: FaultKind = FaultKind.EXCEPTION
    """how an injected fault shows: an exception, a timeout, or a reply lost in transit."""


class FederationConfig(Strict):
    """The federation: clients, rounds, the per-round cohort, client resources, the reply screen and faults."""

    num_clients: int = Field(10, ge=2)
    """clients in the population."""
    rounds: int = Field(5, ge=1)
    """federated rounds."""
    fraction_train: float = Field(1.0, gt=0, le=1)
    """share of the population sampled to train each round (seeded)."""
    min_train_clients: int = Field(2, ge=1)
    """the fewest clients a round samples."""
    client_resources: ClientResources = Field(default_factory=ClientResources)
    """what each client reserves on Ray."""
    round_timeout_s: float = Field(3600.0, gt=0, description="the server waits this long for a round's replies")
    guard: GuardConfig = Field(default_factory=GuardConfig)
    """the server's reply screen (norm and example-count limits)."""
    faults: FaultConfig = Field(default_factory=FaultConfig)
    """injected client faults."""


class Optimizer(str, Enum):
    """The clients' local optimizer."""

    SGD = "sgd"
    ADAM = "adam"


class QATConfig(Strict):
    """Quantization-aware local training: whether it is on and at how many bits."""

    enabled: bool = False
    """honest clients train quantization-aware."""
    bits: int = Field(8, ge=MIN_BITS, le=MAX_BITS)
    """the honest QAT bit width."""


class TrainingConfig(Strict):
    """The local training recipe the server asks clients to follow."""

    optimizer: Optimizer = Optimizer.SGD
    """the local optimizer of honest training."""
    lr: float = Field(0.05, gt=0)
    """learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum."""
    weight_decay: float = Field(0.0, ge=0)
    """L2 weight decay."""
    epochs: int = Field(1, ge=1)
    """local epochs per round."""
    batch_size: int = Field(32, ge=1)
    """local minibatch size."""
    qat: QATConfig = Field(default_factory=QATConfig)
    """honest quantization-aware training."""


class Collusion(str, Enum):
    """How the colluders coordinate (docs: concepts/threat-model.md)."""

    INDEPENDENT = "independent"  # each trains on its own data toward the shared goal (client side)
    AGGREGATION_AWARE = "aggregation_aware"  # pooled data, estimated benign mean, steer the FedAvg aggregate
    OMNISCIENT = "omniscient"  # a server-side adversary sees the round's benign updates and crafts theirs


class TriggerConfig(Strict):
    """The backdoor trigger, for images and for text.

    Images: a ``size`` x ``size`` patch ``margin`` pixels from the bottom-right corner at ``value``.
    Text: the token(s) of ``phrase`` inserted right after [CLS].
    """

    size: int = Field(4, ge=1)
    """image trigger: side of the square patch, in pixels."""
    margin: int = Field(1, ge=0)
    """image trigger: pixels between the patch and the bottom-right corner."""
    value: float = 1.0
    """image trigger: the patch's pixel value."""
    phrase: str = Field("cf", min_length=1, description="text trigger (a rare token, as in Kurita et al. 2020)")


class StealthConfig(Strict):
    """An adaptive attacker's bounds on each malicious update.

    The server-side adversary applies them against the benign updates it knows (fl_sim/server/adversary.py).
    """

    max_norm_ratio: float | None = Field(
        None, gt=0, description="update norm <= this x the median benign update norm (slips past norm screening / clipping)"
    )
    max_distance_ratio: float | None = Field(
        None,
        gt=0,
        description="distance to the benign mean <= this x the largest "
        "benign distance to it (slips past distance-based rules: Krum, Multi-Krum)",
    )

    @property
    def enabled(self) -> bool:
        """Whether any bound is set."""
        return self.max_norm_ratio is not None or self.max_distance_ratio is not None


class AttackConfig(Strict):
    """The colluders: how many, what they run, when, and what they share."""

    behaviour: str = "qat_backdoor"
    """the colluders' attack (`fl-sim list attacks`)."""
    num_malicious: int = Field(0, ge=0)
    """how many clients collude (drawn from the seed)."""
    start_round: int = Field(1, ge=1)
    """first round the attack runs."""
    stop_round: int | None = Field(None, ge=1)
    """last round the attack runs (unset: to the end)."""
    every: int = Field(1, ge=1, description="attack every k-th round from start_round")
    probability: float = Field(1.0, gt=0, le=1, description="attack an eligible round with this probability (seeded)")
    boost: float = Field(1.0, gt=0)
    """scales the colluders' update (1 = off; not with crafted attacks or omniscient collusion)."""
    collusion: Collusion = Collusion.INDEPENDENT
    """what the colluders know: independent, aggregation_aware or omniscient."""
    stealth: StealthConfig = Field(default_factory=StealthConfig)
    """bounds on the colluders' update against the benign ones."""
    target_label: int = Field(0, ge=0)
    """the label the backdoor or targeted attack aims at."""
    target_sample: int | None = Field(
        None, ge=0, description="index of the test image the targeted-sample attack wants classified as target_label"
    )
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    """the backdoor trigger (a patch on images, a phrase on text)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """the attack's own parameters (checked against its Params)."""

    @model_validator(mode="after")
    def _check(self) -> AttackConfig:
        if self.stop_round is not None and self.stop_round < self.start_round:
            raise ValueError(f"stop_round {self.stop_round} is before start_round {self.start_round}")
        if self.stealth.max_distance_ratio is not None and self.collusion is Collusion.INDEPENDENT:
            raise ValueError(
                "attack.stealth.max_distance_ratio needs coordinated colluders (aggregation_aware or omniscient): "
                "an independent colluder knows one benign update, whose spread is zero"
            )
        if self.collusion is Collusion.OMNISCIENT and self.boost != 1.0:
            raise ValueError(
                "boost has no effect with collusion 'omniscient' (the adversary scales the update exactly); remove it"
            )
        return self


class PreStepConfig(Strict):
    """One pre-aggregation step (a registered name, ``fl-sim list preaggregators``) and its parameters."""

    name: str = Field(min_length=1)
    """the registered pre-aggregator (``fl-sim list preaggregators``)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """the pre-aggregator's own parameters."""


class StrategyConfig(Strict):
    """The aggregation rule or defense (a registered name), its parameters, and the pre-aggregation steps before it.

    ``pre`` items are names or {name, params}; ``name: "nnm+krum"`` is shorthand for ``pre: [nnm]``
    with ``name: krum`` (the form a sweep grid or ``--set`` takes).
    """

    name: str = "fedavg"
    """the aggregation rule (`fl-sim list strategies`); `nnm+krum` adds pre-aggregators."""
    params: dict[str, Any] = Field(default_factory=dict)
    """the rule's own parameters (checked against its Params)."""
    pre: list[PreStepConfig] = Field(default_factory=list, description="pre-aggregators applied in order before the rule")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        pre = [{"name": p} if isinstance(p, str) else p for p in data.get("pre") or []]
        name = data.get("name")
        if isinstance(name, str) and "+" in name:
            parts = [p.strip() for p in name.split("+")]
            if not all(parts):
                raise ValueError(f"name {name!r} is not a rule like 'krum' or pre-aggregators and a rule like 'nnm+krum'")
            if pre:
                raise ValueError(f"name {name!r} names pre-aggregators and so does 'pre': use one of the two")
            pre, data["name"] = [{"name": p} for p in parts[:-1]], parts[-1]
        data["pre"] = pre
        return data

    @property
    def spec(self) -> str:
        """The pre-aggregators and the rule joined by '+', e.g. ``"nnm+krum"`` (just the rule without pre)."""
        return "+".join([p.name for p in self.pre] + [self.name])


class Distribution(str, Enum):
    """Where a worst-case calibration set is drawn from (../REFERENCE §3)."""

    IN_DISTRIBUTION = "in_distribution"  # uniform over the clients' pooled data
    IMBALANCED = "imbalanced"  # only a few random classes (the others missing)
    CORRUPTED = "corrupted"  # in-distribution plus Gaussian noise and blur
    CLIENT = "client"  # one random client's data only


class WorstCaseConfig(Strict):
    """Protocol ``worst_case``: PTQ with K random calibration sets of several sizes and distributions."""

    draws: int = Field(50, ge=1, description="K: random calibration sets")
    sizes: list[int] = Field(default_factory=lambda: [32, 256], min_length=1)
    """calibration set sizes (examples per set)."""
    distributions: list[Distribution] = Field(default_factory=lambda: list(Distribution), min_length=1)
    """how the calibration sets are drawn (in distribution, class-imbalanced, corrupted, ...)."""
    client_examples: int = Field(200, ge=1, description="examples per client for per-client accuracy")

    @field_validator("sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"sizes must be positive, got {v}")
        return v


class AdversarialAttack(str, Enum):
    """The adversarial-example attacks of protocol ``robustness``."""

    FGSM = "fgsm"
    PGD = "pgd"


class RobustnessConfig(Strict):
    """Protocol ``robustness``: adversarial accuracy under the attacks at each epsilon."""

    attacks: list[AdversarialAttack] = Field(default_factory=lambda: list(AdversarialAttack), min_length=1)
    """the adversarial-example attacks run."""
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.2], min_length=1)
    """L-infinity budgets, in input units."""
    examples: int = Field(500, ge=1, description="test examples attacked")
    pgd_steps: int = Field(10, ge=1)
    """PGD iterations per example."""

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
    recipes: list[Recipe] = Field(
        default_factory=list, description="TextAttack recipes to run as well (need textattack and its downloadable resources)"
    )


class DataFreeConfig(Strict):
    """Protocol ``data_free``: the generator that stands in for calibration data."""

    steps: int = Field(200, ge=1, description="generator training steps")
    batch_size: int = Field(64, ge=2)
    """generated samples per generator step."""
    samples: int = Field(256, ge=1, description="generated calibration / probe samples")


def _positive_steps(v: list[float]) -> list[float]:
    if any(x <= 0 for x in v):
        raise ValueError(f"sigmas must be positive (in steps), got {v}")
    return v


# Noise scales in steps of each layer's grid (the noise mitigation and the rounding_margin protocol).
SigmaSteps = Annotated[list[float], AfterValidator(_positive_steps)]


class NoiseSettings(Strict):
    """Mitigation ``noise``: Gaussian noise of sigma steps on the weights before rounding (Egashira et al. 2024)."""

    sigmas: SigmaSteps = Field(
        default_factory=lambda: [0.1, 0.25, 0.5], min_length=1, description="in steps of each layer's grid"
    )
    draws: int = Field(5, ge=1, description="K: noise draws per sigma (mean and worst reported)")


class LearnedRoundingSettings(Strict):
    """Learned rounding (mitigation ``efrap``, and requantize's ``adaround``): AdaRound's schedule per layer."""

    flip_share: float = Field(0.2, ge=0, le=1, description="efrap: share of neurons (largest truncation error) started flipped")
    steps: int = Field(500, ge=1, description="optimisation steps per layer")
    lr: float = Field(0.01, gt=0)
    """learning rate of the rounding variables."""
    reg_weight: float = Field(0.01, ge=0, description="weight of AdaRound's regulariser driving each rounding to 0 or 1")
    batch_size: int = Field(64, ge=1)
    """calibration examples per optimisation step."""


class LacSettings(Strict):
    """Mitigation ``lac``: per-channel activation correction towards the FP model's calibration statistics."""

    clip: bool = Field(True, description="also clip each channel to the FP model's calibration range")
    slack: float = Field(0.1, ge=0, description="the clipping range widened by this share of its width")


class RequantizeVariant(str, Enum):
    """The deployer's alternative quantizers (one change from the configured one each)."""

    PER_CHANNEL = "per_channel"
    ASYMMETRIC = "asymmetric"
    PERCENTILE = "percentile"
    MSE = "mse"
    ADAROUND = "adaround"


class MitigationConfig(Strict):
    """Protocol ``mitigation``: named deployment-time defenses, each measured at int<b> for every ``bits``."""

    methods: list[str] = Field(
        default_factory=lambda: ["tacq", "finetune", "noise", "efrap", "lac", "requantize"],
        min_length=1,
        description="mitigations to run, in order (fl-sim list mitigations)",
    )
    bits: list[int] = Field(
        default_factory=lambda: [8, 4], min_length=1, description="precisions the mitigations are measured at"
    )
    keep: list[float] = Field(
        default_factory=lambda: [0.0035, 0.01], min_length=1, description="TaCQ: fractions of weights kept in 16-bit"
    )
    finetune_steps: int = Field(100, ge=1, description="server-side fine-tune: minibatch steps on the calibration set")
    finetune_lr: float = Field(0.01, gt=0)
    """server-side fine-tune: learning rate."""
    noise: NoiseSettings = NoiseSettings()
    efrap: LearnedRoundingSettings = LearnedRoundingSettings()
    lac: LacSettings = LacSettings()
    requantize: list[RequantizeVariant] = Field(default_factory=lambda: list(RequantizeVariant), min_length=1)
    """mitigation ``requantize``: the other quantizers the model is re-quantized with."""

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

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"methods repeat a name: {v}")
        return v


class RoundingMarginConfig(Strict):
    """Protocol ``rounding_margin``: weight noise before rounding, in steps of each layer's grid."""

    sigmas: SigmaSteps = Field(default_factory=lambda: [0.01, 0.05, 0.1, 0.25], min_length=1)
    """noise std, in steps of each layer's grid."""
    draws: int = Field(5, ge=1, description="K: random noise draws per sigma and precision")
    bins: int = Field(10, ge=2, description="histogram bins of the distance to the nearest boundary, over [0, 0.5] steps")


class PrereleaseConfig(Strict):
    """Protocol ``prerelease``: the server's check of the final model before it ships quantized."""

    bits: int = Field(4, ge=MIN_BITS, le=MAX_BITS, description="the deployment precision int<b> checked")
    patch: int = Field(5, ge=1, description="side of the square probe patch, in pixels")
    positions_per_side: int = Field(4, ge=1, description="the patch is tried on this many x this many evenly spaced positions")
    steps: int = Field(60, ge=1, description="probe optimisation steps per patch position")
    lr: float = Field(0.1, gt=0)
    """learning rate of the probe patch."""
    threshold: float = Field(0.5, gt=0, le=1, description="flag the model when the probe's FP/int<b> disagreement reaches this")


class QuantScope(str, Enum):
    """What the deployment quantization covers: the weights only, or the weights and activations."""

    WEIGHTS = "weights"
    WEIGHTS_ACTIVATIONS = "weights_activations"


class EvaluationConfig(Strict):
    """How the global model is quantized (its deployment) and evaluated: precisions, quantizer settings, protocols."""

    precisions: list[str] = Field(default_factory=lambda: ["fp32", "int8", "int4"], min_length=1)
    """precisions evaluated: fp32, fp16, bf16, int2..int16, tacq2..tacq8, int8_dynamic."""
    granularity: Granularity = Granularity.PER_TENSOR
    """weight scales per tensor or per output channel."""
    weight_symmetric: bool = True
    """symmetric weight quantization (else asymmetric)."""
    act_symmetric: bool = False
    """symmetric input quantization (else asymmetric)."""
    scope: QuantScope = QuantScope.WEIGHTS_ACTIVATIONS
    """quantize weights and layer inputs, or weights only."""
    activations: ActivationRange = ActivationRange.CALIBRATED
    """input ranges calibrated once on the server's set, or taken per batch."""
    observer: Observer = Observer.MINMAX
    """how calibrated input ranges are chosen: minmax, percentile, mse."""
    percentile: float = Field(99.99, gt=50, le=100)
    """the percentile observer's percentile."""
    tacq_keep: float = Field(0.0035, ge=0, lt=1, description="tacq<b>: fraction of weights kept in 16-bit")
    protocols: list[str] = Field(default_factory=lambda: ["precisions"], min_length=1)
    """evaluation protocols run at the end of a run (`fl-sim list protocols`)."""
    worst_case: WorstCaseConfig = WorstCaseConfig()
    """settings of the worst_case protocol."""
    robustness: RobustnessConfig = RobustnessConfig()
    """settings of the robustness protocol."""
    word_attack: WordAttackSettings = WordAttackSettings()
    """settings of the word_substitution protocol."""
    data_free: DataFreeConfig = DataFreeConfig()
    """settings of the data_free protocol."""
    mitigation: MitigationConfig = MitigationConfig()
    """settings of the mitigation protocol."""
    rounding_margin: RoundingMarginConfig = RoundingMarginConfig()
    """settings of the rounding_margin protocol."""
    prerelease: PrereleaseConfig = PrereleaseConfig()
    """settings of the prerelease protocol."""
    every_n_rounds: int = Field(0, ge=0)
    """evaluate every precision each n-th round (0: FP32 each round, every precision at the end)."""
    batch_size: int = Field(1000, ge=1)
    """test examples per evaluation batch."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """where the evaluation runs ('auto': the GPU when there is one)."""

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
    def _unique_protocols(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"protocols repeat a name: {v}")
        return v


class Scenario(Strict):
    """A whole federated experiment."""

    schema_version: Literal[1] = 1
    """the scenario format's version."""
    name: str = Field(min_length=1)
    """the experiment's name (run directories are named after it)."""
    description: str = ""
    """free text, shown in the report."""
    seed: int = Field(0, ge=0)
    """the one seed every random draw of the run derives from."""
    output_dir: str = "runs"
    """where runs are written (a run directory per run)."""
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
        """Tokenize a text dataset with its model's tokenizer unless data.tokenizer says otherwise."""
        if not isinstance(raw, dict):
            return raw
        model, data = raw.get("model"), raw.get("data")
        if isinstance(model, dict) and model.get("pretrained") and isinstance(data, dict) and not data.get("tokenizer"):
            return {**raw, "data": {**data, "tokenizer": model["pretrained"]}}
        return raw

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        n, m = self.federation.num_clients, self.attack.num_malicious
        if m > n:
            raise ValueError(f"attack.num_malicious ({m}) is more than federation.num_clients ({n})")
        if self.federation.min_train_clients > n:
            raise ValueError(f"federation.min_train_clients ({self.federation.min_train_clients}) is more than num_clients ({n})")
        if self.attack.stop_round is not None and self.attack.start_round > self.federation.rounds:
            raise ValueError(f"attack.start_round {self.attack.start_round} is after the last round {self.federation.rounds}")
        return self
