"""Quantization-aware screening: a defense against updates whose harm appears only once the global model is quantized.

Such updates come from malicious QAT (Hong et al., NeurIPS 2021). fl_sim's own design; no paper.

Threat model: colluders submit updates that look benign in full precision (norms, directions,
FP accuracy) but move the model to a point where its b-bit twin behaves differently. The server
holds a small clean set (its calibration set, never given to clients) or, with no data, uses
uniform-noise inputs. It knows the deployment precisions but not the trigger or the target.

For each candidate update u_i the server builds the model it would produce, g + u_i, quantizes it
at every deployment precision (activation ranges calibrated on the server set) and measures how
far the quantized twin departs from the FP model on the server set: s_i = max_b of the mean
KL(softmax f_i(x) || softmax Q_b f_i(x)) (``score: kl``, default) or of the share of inputs whose
prediction changes (``score: disagreement``). A candidate whose score is an outlier among the
round's candidates, by the robust z-score z_i = (s_i - median s) / (1.4826 MAD s) above
``z_threshold``, at least ``min_ratio`` x the median and above ``min_score``, is rejected (or, with ``mode:
downweight``, weighted by exp(-z_i)). The rest are averaged with FedAvg's example weights.
Assumes an honest majority of candidates.

Cost per round: for n candidates and B precisions, n x (1 + B) forward passes over the server set
plus n range calibrations, i.e. n x (2 + B) passes; for 10 MNIST clients and 256 server images
this is well under a second on a CPU. It sees nothing a trigger-free clean set cannot show: an
attack whose quantized twin agrees with FP on clean inputs (a backdoor placed exactly) is missed;
the aggregation-aware and omniscient submissions are amplified by n/k, which is what it catches.
"""

from __future__ import annotations

from enum import Enum

import torch

from strategies.aggregation_result import Aggregate, check_updates, check_weights, median, weighted_mean

_MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data


def robust_z(scores: torch.Tensor) -> torch.Tensor:
    """(s - median) / (1.4826 MAD), with the MAD floored so that identical scores give z = 0."""
    s = scores.double()
    med = median(s)
    mad = median((s - med).abs())
    return (s - med) / (_MAD_SCALE * torch.clamp(mad, min=1e-12))


def screen_scores(
    updates: torch.Tensor,
    weights: torch.Tensor,
    scores: torch.Tensor,
    z_threshold: float,
    min_ratio: float,
    downweight: bool,
    min_score: float = 0.0,
) -> Aggregate:
    """Aggregate ``updates`` (n, d) leaving out (or down-weighting) those whose quantization ``scores`` are high outliers.

    Parameters
    ----------
    updates : torch.Tensor
        (n, d) client updates.
    weights : torch.Tensor
        (n,) nonnegative example counts, FedAvg's weights for the kept updates.
    scores : torch.Tensor
        (n,) each update's quantization score; returned as ``scores`` of the result (float64).
    z_threshold : float
        An outlier's robust z-score exceeds this.
    min_ratio : float
        An outlier's score also exceeds this times the median score.
    downweight : bool
        Weight outliers by exp(-z) (z clamped at 0) instead of rejecting them.
    min_score : float
        Scores at or below this are never outliers.
    """
    x = check_updates(updates)
    w = check_weights(weights, x.shape[0], x.device)
    s = scores.to(device=x.device, dtype=torch.float64)
    z = robust_z(s)
    outlier = (z > z_threshold) & (s > min_ratio * median(s)) & (s > min_score)
    factor = torch.exp(-torch.clamp(z, min=0.0)) if downweight else torch.ones_like(z)
    keep = torch.where(outlier, factor if downweight else torch.zeros_like(z), torch.ones_like(z))
    mean, final = weighted_mean(x, w * keep)
    return Aggregate(update=mean.to(updates.dtype), weights=final, scores=s)


# ---- the server side: scores from models (needs the model, the server set and a quantizer) ----

from pydantic import Field  # noqa: E402

from fl_sim.evaluation.precisions import quant_spec  # noqa: E402
from fl_sim.quantization.fake_quant_model import calibrate_ranges, fake_quantized  # noqa: E402
from fl_sim.server.aggregation import (  # noqa: E402
    STRATEGIES,  # noqa: E402
    NoParams,
    RoundInput,
    ServerKnowledge,
    TensorDefense,
)


class Inputs(str, Enum):
    """Which inputs the screen scores candidates on."""

    SERVER = "server"  # the server's calibration set
    NOISE = "noise"  # uniform noise images (a server without data)


class Score(str, Enum):
    """How far a quantized twin departs from its FP model: KL divergence or prediction disagreement."""

    KL = "kl"  # mean KL divergence of the quantized twin's softmax from the FP softmax
    DISAGREEMENT = "disagreement"  # share of inputs whose predicted class changes


class Mode(str, Enum):
    """What happens to an outlier: rejected (weight 0) or down-weighted by exp(-z)."""

    REJECT = "reject"
    DOWNWEIGHT = "downweight"


class QuantAwareParams(NoParams):
    """The quantization-aware screen's precisions, inputs, outlier test and mode."""

    bits: list[int] = Field(default_factory=lambda: [8, 4], min_length=1, description="deployment precisions checked")
    inputs: Inputs = Inputs.SERVER
    samples: int = Field(256, ge=8, description="server inputs used")
    z_threshold: float = Field(3.0, gt=0)
    min_ratio: float = Field(2.0, ge=1, description="an outlier's score must also be at least this x the median")
    score: Score = Score.KL
    min_score: float = Field(0.01, ge=0, description="scores at or below this are never outliers (KL in nats, or a share)")
    mode: Mode = Mode.REJECT


def server_inputs(server: ServerKnowledge, p: QuantAwareParams, seed_round: int) -> torch.Tensor:
    """Return the inputs the screen scores on: the server's calibration set, or uniform noise of its shape."""
    if p.inputs is Inputs.SERVER:
        return server.calibration.x[: p.samples]
    gen = server.generator("quant_aware", seed_round)
    if server.vocab_size is not None:  # random token ids: the textual counterpart of noise images
        return torch.randint(server.vocab_size, (p.samples, *server.input_shape), generator=gen)
    return torch.rand((p.samples, *server.input_shape), generator=gen)


def departure(fp_logits: torch.Tensor, q_logits: torch.Tensor, score: Score) -> float:
    """How far the quantized outputs depart from the FP ones (pure)."""
    if score is Score.DISAGREEMENT:
        return float((q_logits.argmax(1) != fp_logits.argmax(1)).double().mean())
    log_p, log_q = torch.log_softmax(fp_logits.double(), 1), torch.log_softmax(q_logits.double(), 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


@torch.no_grad()
def quantization_score(model: torch.nn.Module, x: torch.Tensor, bits: list[int], score: Score, server: ServerKnowledge) -> float:
    """Max over ``bits`` of the departure of the b-bit twin from the FP model on ``x``."""
    fp = model(x)
    ranges = calibrate_ranges(model, [x])
    worst = 0.0
    for b in bits:
        with fake_quantized(model, quant_spec(b, server.deployment), ranges):
            worst = max(worst, departure(fp, model(x), score))
    return worst


@STRATEGIES.register(
    "quant_aware",
    "fl_sim's quantization-aware screen: rejects updates whose model's quantized twin "
    "disagrees with its FP self far more than the others' do",
)
class QuantAwareDefense(TensorDefense[QuantAwareParams]):
    """Score each candidate model's quantized twin against its FP self; reject the outliers."""

    Params = QuantAwareParams

    def aggregate(self, r: RoundInput) -> Aggregate:
        """Score every candidate, screen the outliers, average the rest."""
        p, server = self.params, self.knowledge
        x = server_inputs(server, p, r.server_round).to(server.device)
        scores = torch.tensor(
            [quantization_score(server.model_at(r.reference, u, r.keys), x, p.bits, p.score, server) for u in r.updates],
            dtype=torch.float64,
        )
        return screen_scores(r.updates, r.weights, scores, p.z_threshold, p.min_ratio, p.mode is Mode.DOWNWEIGHT, p.min_score)
