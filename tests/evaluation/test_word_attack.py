"""The word-substitution attack on hand-made vocabularies, embeddings and scorers: which words it may
change, which substitutes it finds, the greedy order, query counting, and the protocol's summary."""

import torch

from fl_sim.evaluation.protocols.word_substitution import Vocabulary, run_attack
from fl_sim.evaluation.word_attack import WordAttackConfig, attack_one, neighbour_table, substitutable, word_positions

#          0       1       2      3       4        5       6       7       8        9
TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "bad", "the", "##ly", "awful"]


def test_substitutable_words_exclude_specials_pieces_and_stop_words():
    assert substitutable(TOKENS).tolist() == [False, False, False, False, True, True, True, False, False, True]


def test_word_positions_skip_words_continued_by_a_piece():
    allowed = substitutable(TOKENS)
    cont = torch.tensor([t.startswith("##") for t in TOKENS])
    ids = torch.tensor([1, 4, 8, 7, 6, 2, 0])  # [CLS] good ##ly the bad [SEP] [PAD]
    assert word_positions(ids, allowed, cont) == [4]


def test_neighbour_table_by_cosine_similarity():
    emb = torch.zeros(10, 2)
    emb[4] = torch.tensor([1.0, 0.0])  # good
    emb[5] = torch.tensor([0.9, 0.1])  # great: close to good
    emb[6] = torch.tensor([-1.0, 0.2])  # bad
    emb[9] = torch.tensor([-0.9, 0.0])  # awful: close to bad
    emb[7] = torch.tensor([1.0, 0.0])  # "the": identical to good, but a stop word
    allowed = substitutable(TOKENS)
    subs = neighbour_table(emb, torch.tensor([4, 6]), allowed, k=3, min_sim=0.5)
    assert subs == {4: [5], 6: [9]}
    loose = neighbour_table(emb, torch.tensor([4]), allowed, k=3, min_sim=-1.0)
    assert loose[4][0] == 5 and set(loose[4]) == {5, 6, 9}


def _bag_scorer(weights: dict[int, float]):
    """P(class 1) = sigmoid(sum of token weights): a transparent two-class 'model'."""

    def score(ids: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(10)
        for t, v in weights.items():
            w[t] = v
        p1 = torch.sigmoid(w[ids].sum(1))
        return torch.stack([1 - p1, p1], 1)

    return score


def test_attack_flips_with_the_most_similar_flipping_substitute_and_counts_queries():
    score = _bag_scorer({4: 2.0, 5: 1.5, 6: -1.0, 9: -3.0})
    ids = torch.tensor([1, 4, 5, 2])  # "good great": class 1, p1 = sigmoid(3.5)
    subs = {4: [6, 9], 5: [6, 9]}
    out = attack_one(ids, 1, score, [1, 2], subs, mask_id=3, cfg=WordAttackConfig(max_perturb=1.0))
    # importance: masking "good" drops p1 most -> position 1 first; "bad" gives 1.5-1 = 0.5 (still 1),
    # "awful" gives 1.5-3 < 0: a flip, so "awful" is chosen at position 1.
    assert out.success and out.ids.tolist() == [1, 9, 5, 2] and out.changed == 1 and out.words == 2
    assert out.queries == 1 + 2 + 2  # the base, two masked copies, two substitutes


def test_attack_respects_the_perturbation_budget():
    score = _bag_scorer({4: 5.0, 5: 5.0, 6: -1.0})
    ids = torch.tensor([1, 4, 5, 2])
    out = attack_one(ids, 1, score, [1, 2], {4: [6], 5: [6]}, mask_id=3, cfg=WordAttackConfig(max_perturb=0.5))
    assert not out.success and out.changed == 1 and (out.ids != ids).sum() == 1


def test_run_attack_summary_counts_only_correct_examples():
    score = _bag_scorer({4: 2.0, 6: -2.0, 9: -3.0})
    x = torch.tensor([[1, 4, 2], [1, 6, 2], [1, 4, 2]])
    y = torch.tensor([1, 1, 0])  # the second and third are misclassified from the start
    vocab = Vocabulary(substitutable(TOKENS), torch.tensor([t.startswith("##") for t in TOKENS]), 3)
    run = run_attack(score, x, y, vocab, {4: [9]}, WordAttackConfig())
    s = run.summary(y)
    assert run.correct.tolist() == [True, False, False]
    assert s["clean_accuracy"] == 1 / 3 and s["adversarial_accuracy"] == 0.0 and s["attack_success_rate"] == 1.0
    assert run.adversarial[0].tolist() == [1, 9, 2] and s["mean_queries"] == 1 + 1 + 1 + 1
