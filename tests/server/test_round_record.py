"""Round records read back from results.json or a checkpoint, older ones without the placement field included."""

from fl_sim.server.round_record import RoundRecord


def _raw() -> dict:
    return {
        "round": 2,
        "elapsed_s": 1.5,
        "memory_mb": None,
        "cohort": [0, 1],
        "replied": [0, 1],
        "failed": [],
        "errors": {},
        "timed_out": [],
        "dropped": [],
        "rejected": {},
        "capped_counts": {},
        "update_norm_ratio": {},
        "rule_weights": {},
        "rule_scores": {},
        "decisions": {"0": "kept", "1": "kept"},
        "malicious_in_cohort": [1],
        "malicious_sampled": {"1": True},
        "attack_active": True,
        "integer_hit_rate": None,
        "fp32_accuracy": 0.5,
        "precisions": {"fp32": {"accuracy": 0.5}},
    }


def test_a_record_without_placement_reads_back_with_an_empty_one():
    record = RoundRecord.from_json(_raw())
    assert record.placement == {} and record.to_json()["placement"] == {}


def test_the_placement_survives_the_round_trip():
    placed = {"wanted": 10.0, "kept": 8.0, "landed": 7.0, "collateral": 0.0, "exact": 1.0, "budget": 0.9}
    record = RoundRecord.from_json({**_raw(), "placement": placed})
    assert RoundRecord.from_json(record.to_json()).placement == placed
    assert record.with_precisions({"int4": {"accuracy": 0.4}}).placement == placed
