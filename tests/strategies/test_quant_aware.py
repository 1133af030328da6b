"""fl_sim's quantization-aware screen: the robust z-score, the screen's gates, the departure
measures on hand-computed logits, the score of a tiny model on a hand-quantized grid, and the
registered rule end to end on the tiny digits scenario (no Ray)."""

import math

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fl_sim.models import build_model
from fl_sim.server.updates import flatten_update, float_keys, unflatten_update
from strategies.quant_aware import Score, departure, quantization_score, robust_z, screen_scores
from tests.conftest import knowledge_for, make_strategy, scenario_of, tiny_raw

pytestmark = pytest.mark.usefixtures("task_identity", "one_thread")

F64 = torch.float64
K = 1.4826


# ---- robust z and the screen (pure) ----


def test_robust_z_hand_cases():
    # median 3, |s - 3| = (2, 1, 0, 1, 97), MAD 1.
    z = robust_z(torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert z.dtype == F64
    assert z.tolist() == pytest.approx([-2 / K, -1 / K, 0.0, 1 / K, 97 / K], rel=1e-12)
    # median 1 and MAD 0: the MAD is floored, equal scores get z = 0 and the odd one a huge z.
    z = robust_z(torch.tensor([1.0, 1.0, 1.0, 1.0, 10.0]))
    assert z[:4].tolist() == [0.0] * 4 and float(z[4]) == pytest.approx(9 / (K * 1e-12), rel=1e-9)
    assert robust_z(torch.full((4,), 7.0)).tolist() == [0.0] * 4
    # even count: median (2 + 3) / 2 = 2.5; |s - 2.5| = (1.5, 0.5, 0.5, 7.5), MAD 1.
    assert robust_z(torch.tensor([1.0, 2.0, 3.0, 10.0])).tolist() == pytest.approx([-1.5 / K, -0.5 / K, 0.5 / K, 7.5 / K])


UPDATES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [-50.0, 50.0]], dtype=F64)
COUNTS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=F64)
SCORES = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=F64)  # z of the last: 97 / 1.4826 = 65.4


def test_screen_rejects_exactly_the_outlier():
    agg = screen_scores(UPDATES, COUNTS, SCORES, z_threshold=3.0, min_ratio=2.0, downweight=False)
    assert agg.weights.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.0])
    # (1 (1, 0) + 2 (0, 1) + 3 (1, 1) + 4 (2, 0)) / 10 = (1.2, 0.5)
    assert agg.update.tolist() == pytest.approx([1.2, 0.5])
    assert agg.scores.tolist() == SCORES.tolist()


def test_screen_gates():
    def rejected(scores, **kw):
        args = {"z_threshold": 3.0, "min_ratio": 2.0, "min_score": 0.0, **kw}
        agg = screen_scores(UPDATES, COUNTS, torch.tensor(scores, dtype=F64), downweight=False, **args)
        return [i for i, w in enumerate(agg.weights.tolist()) if w == 0]

    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0]) == [4]
    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0], z_threshold=70.0) == []  # z = 65.4 is not above 70
    # min_ratio: 100 must exceed min_ratio x median 3.
    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0], min_ratio=33.0) == [4]
    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0], min_ratio=34.0) == []
    # With a zero MAD any difference has a huge z: only min_ratio stops a small one.
    assert rejected([1.0, 1.0, 1.0, 1.0, 1.5]) == []
    assert rejected([1.0, 1.0, 1.0, 1.0, 2.5]) == [4]
    # min_score: scores at or below it are never outliers.
    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0], min_score=100.0) == []
    assert rejected([1.0, 2.0, 3.0, 4.0, 100.0], min_score=99.0) == [4]
    # Low outliers (negative z) are never rejected.
    assert rejected([50.0, 100.0, 100.0, 100.0, 100.0]) == []


def test_downweight_mode_scales_the_outlier_by_exp_minus_z():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0], dtype=F64)  # median 3, MAD 1: z = 7 / 1.4826 = 4.72 > 3
    agg = screen_scores(UPDATES, COUNTS, scores, z_threshold=3.0, min_ratio=2.0, downweight=True)
    factor = math.exp(-7 / K)
    raw = [1.0, 2.0, 3.0, 4.0, 5.0 * factor]  # the inliers keep full weight even with z > 0 (client 3: 0.67)
    assert agg.weights.tolist() == pytest.approx([r / sum(raw) for r in raw], rel=1e-12)
    assert 0 < float(agg.weights[4]) < 0.01
    expected = torch.tensor(raw, dtype=F64) @ UPDATES / sum(raw)
    assert torch.allclose(agg.update, expected, atol=1e-12)


# ---- departure and the score of a model ----


def test_departure_hand_cases():
    fp = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=F64)
    assert departure(fp, fp.clone(), Score.KL) == pytest.approx(0.0, abs=1e-15)
    # p = (1/2, 1/2), q = softmax(ln 3, 0) = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); row 2 equal.
    q = torch.tensor([[math.log(3.0), 0.0], [1.0, 2.0]], dtype=F64)
    assert departure(fp, q, Score.KL) == pytest.approx(0.25 * math.log(4 / 3), rel=1e-12)
    # KL is not symmetric: KL(q || p) = 3/4 ln(3/2) + 1/4 ln(1/2) for row 1.
    assert departure(q, fp, Score.KL) == pytest.approx(0.5 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5)), rel=1e-12)
    # Disagreement: the share of rows whose argmax changes (rows 1 and 4 of 4).
    fp4 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    q4 = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 1.0], [3.0, 0.0]])
    assert departure(fp4, q4, Score.DISAGREEMENT) == 0.5
    assert departure(fp4, fp4, Score.DISAGREEMENT) == 0.0


def _tiny_scenario(**sections):
    return scenario_of(tiny_raw(evaluation={"device": "cpu"}, **sections), "t")


def test_quantization_score_on_a_hand_quantized_grid():
    # One linear layer W = diag(1, -1): symmetric per-tensor weights, max |w| = 1, exact at any bits.
    # Inputs are quantized asymmetrically on their calibrated range [0, 1]: 0 and 1 are exact; 0.5
    # becomes round(0.5 * 255) / 255 = 128/255 at 8 bits and round(0.5 * 15) / 15 = 8/15 at 4 bits
    # (round half to even).
    server = knowledge_for(_tiny_scenario())
    model = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    model.eval()
    exact = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert quantization_score(model, exact, [8, 4], Score.KL, server) == pytest.approx(0.0, abs=1e-12)

    x = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])

    def kl_of_row_2(a: float) -> float:  # rows 1 and 3 are exact; row 2: logits (0.5, 0) -> (a, 0)
        p, q = torch.softmax(torch.tensor([0.5, 0.0], dtype=F64), 0), torch.softmax(torch.tensor([a, 0.0], dtype=F64), 0)
        return float((p * (p / q).log()).sum()) / 3

    assert quantization_score(model, x, [8], Score.KL, server) == pytest.approx(kl_of_row_2(128 / 255), rel=1e-4)
    assert quantization_score(model, x, [4], Score.KL, server) == pytest.approx(kl_of_row_2(8 / 15), rel=1e-4)
    assert quantization_score(model, x, [8, 4], Score.KL, server) == pytest.approx(kl_of_row_2(8 / 15), rel=1e-4)
    assert quantization_score(model, x, [8, 4], Score.DISAGREEMENT, server) == 0.0  # no prediction flips


# ---- the registered rule end to end ----

N = 6
PERTURBED = 3


def test_registered_rule_rejects_the_candidate_whose_quantized_twin_departs():
    s = _tiny_scenario(federation={"num_clients": N, "rounds": 1}, strategy={"name": "quant_aware"})
    strategy = make_strategy(s, node_of={p: 1000 + p for p in range(N)})
    torch.manual_seed(0)
    g = build_model("mnist_cnn", 10, (1, 28, 28)).state_dict()
    keys = float_keys(g)
    d = sum(v.numel() for v in g.values())
    gen = torch.Generator().manual_seed(7)
    x = 0.003 * torch.randn(N, d, generator=gen)  # small honest steps
    x[PERTURBED] = 0.1 * torch.randn(d, generator=gen)  # a huge random perturbation (33x the others' norm)
    counts = [100 + 20 * p for p in range(N)]
    msgs = list(strategy.configure_train(1, ArrayRecord(g), ConfigRecord(), None))
    replies = [
        Message(
            RecordDict({"arrays": ArrayRecord(unflatten_update(u, g, keys)), "metrics": MetricRecord({"num-examples": c})}),
            reply_to=m,
        )
        for m, u, c in zip(msgs, x, counts)
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    log = strategy.round_log[1]
    assert log.rejected == {}  # the reply screen let it through: the quantization screen decides
    scores = log.scores
    assert sorted(scores) == list(range(N)) and max(scores, key=scores.get) == PERTURBED
    assert scores[PERTURBED] > 2 * sorted(scores.values())[N // 2]
    kept = [p for p in range(N) if p != PERTURBED]
    total = sum(counts[p] for p in kept)
    assert log.weights == pytest.approx({p: (0.0 if p == PERTURBED else counts[p] / total) for p in range(N)})
    assert metrics["kept"] == N - 1
    agg = flatten_update(arrays.to_torch_state_dict(), g, keys)
    expected = sum(counts[p] * x[p].double() for p in kept) / total
    assert torch.allclose(agg.double(), expected, atol=1e-6)
