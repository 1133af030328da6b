"""Detection quality of a defense: per-round decisions from the screen and the rule's weights, and
TPR / FPR over a hand-made history, computed by hand."""

import pytest

from fl_sim.evaluation.detection import DOWNWEIGHTED, KEPT, REJECTED, detection_rates, round_decisions


def test_round_decisions_screen_zero_weight_downweight_and_kept():
    # 6 replies; client 5 is rejected by the screen, so the rule decides over the other 5:
    # equal share 1/5, half of it 0.1.
    replied = [0, 1, 2, 3, 4, 5]
    weights = {0: 0.0, 1: 0.05, 2: 0.1, 3: 0.35, 4: 0.5}
    assert round_decisions(replied, [5], weights) == {
        5: REJECTED,  # the screen
        0: REJECTED,  # weight 0
        1: DOWNWEIGHTED,  # 0.05 < 0.1
        2: KEPT,  # exactly half the equal share is not below it
        3: KEPT,
        4: KEPT,
    }


def test_the_equal_share_counts_only_the_replies_the_rule_saw():
    # Without the screen rejection the share would be 1/3 (half: 1/6 > 0.15); with it, 1/2 (half: 0.25).
    assert round_decisions([0, 1, 2], [], {0: 0.15, 1: 0.425, 2: 0.425})[0] == DOWNWEIGHTED
    assert round_decisions([0, 1, 2], [2], {0: 0.3, 1: 0.7})[0] == KEPT
    assert round_decisions([0, 1, 2], [2], {0: 0.2, 1: 0.8})[0] == DOWNWEIGHTED


def test_without_rule_weights_only_the_screen_decides():
    assert round_decisions([0, 1, 2, 3], [1, 3], None) == {0: KEPT, 1: REJECTED, 2: KEPT, 3: REJECTED}
    # A client the rule gave no weight entry for is kept.
    assert round_decisions([0, 1, 2], [], {0: 0.0, 1: 1.0}) == {0: REJECTED, 1: KEPT, 2: KEPT}
    assert round_decisions([], [], {}) == {}


def test_detection_rates_on_a_hand_made_history():
    malicious = {1, 4}
    history = [
        {
            "round": 1,
            "attack_active": True,
            "rule_weights": {},
            "decisions": {"0": KEPT, "1": REJECTED, "2": DOWNWEIGHTED, "3": KEPT, "4": KEPT},
        },
        # attack off: malicious replies count neither as positives nor as negatives
        {
            "round": 2,
            "attack_active": False,
            "rule_weights": {},
            "decisions": {"0": REJECTED, "1": REJECTED, "3": KEPT, "4": KEPT},
        },
        {
            "round": 3,
            "attack_active": True,
            "rule_weights": {"1": 0.1, "2": 0.45, "4": 0.0, "5": 0.45},
            "decisions": {"1": DOWNWEIGHTED, "2": KEPT, "4": REJECTED, "5": KEPT},
            "update_norm_ratio": {"1": 3.0, "2": 1.0, "4": 5.0, "5": 1.0},
        },
    ]
    # Malicious replies in attack rounds: 1, 4 (round 1), 1, 4 (round 3) -> 4, flagged: 1; 1, 4 -> 3.
    # Honest replies in all rounds: 0, 2, 3 (round 1), 0, 3 (round 2), 2, 5 (round 3) -> 7, flagged: 2, 0.
    assert detection_rates(history, malicious) == {
        "tpr": pytest.approx(3 / 4),
        "fpr": pytest.approx(2 / 7),
        "malicious_replies": 4,
        "flagged_malicious": 3,
        "honest_replies": 7,
        "flagged_honest": 2,
        "rule_decides": True,
        "malicious_norm_ratio": pytest.approx(4.0),  # the malicious replies of the attack rounds that report a norm
    }


def test_detection_rates_without_positives_or_rule_weights():
    history = [
        {"attack_active": False, "rule_weights": {}, "decisions": {"0": KEPT, "1": REJECTED}},
        {"decisions": {"0": KEPT, "1": KEPT}},
    ]  # no attack_active key: not an attack round
    rates = detection_rates(history, {1})
    assert rates["tpr"] is None and rates["malicious_replies"] == 0
    assert rates["fpr"] == 0.0 and rates["honest_replies"] == 2
    assert rates["rule_decides"] is False and rates["malicious_norm_ratio"] is None
    assert detection_rates([], {1})["fpr"] is None
