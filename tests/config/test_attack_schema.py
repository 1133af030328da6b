"""The attack section: its schedule (start / stop / every / seeded probability) and the cross-checks
that reject scenarios whose attack cannot run as written (one line, exit 2 through the CLI)."""

import pytest

from fl_sim.cli import main
from fl_sim.clients.schedule import attack_active
from fl_sim.config.schema import AttackConfig, Scenario
from fl_sim.errors import UserError
from fl_sim.wiring import wire
from tests.conftest import scenario_of, tiny_raw


def _active(a: AttackConfig, seed: int, rounds: int) -> set[int]:
    return {r for r in range(1, rounds + 1) if attack_active(a, r, seed)}


def test_start_every_stop_schedule():
    a = AttackConfig(num_malicious=1, start_round=2, every=3, stop_round=10)
    assert _active(a, 0, 15) == {2, 5, 8}
    assert _active(AttackConfig(num_malicious=1, start_round=3, every=2), 0, 9) == {3, 5, 7, 9}
    assert _active(AttackConfig(num_malicious=1, start_round=4, stop_round=6), 0, 9) == {4, 5, 6}
    assert _active(AttackConfig(num_malicious=1), 0, 4) == {1, 2, 3, 4}
    assert _active(AttackConfig(num_malicious=1, start_round=1, stop_round=1, every=5), 0, 9) == {1}


def test_probability_is_a_seeded_draw_per_round():
    a = AttackConfig(num_malicious=1, probability=0.5)
    first = _active(a, 7, 200)
    assert _active(a, 7, 200) == first  # same seed, same rounds
    assert 70 <= len(first) <= 130  # Binomial(200, 0.5): mean 100, sd ~7
    assert _active(a, 8, 200) != first  # another seed, another schedule
    # Attack.active(r) does not depend on the other rounds asked before it.
    assert all(attack_active(a, r, 7) == (r in first) for r in (150, 3, 99, 1))


def test_probability_applies_only_to_eligible_rounds():
    a = AttackConfig(num_malicious=1, start_round=5, every=4, stop_round=120, probability=0.6)
    got = _active(a, 1, 200)
    eligible = set(range(5, 121, 4))
    assert got <= eligible and 0 < len(got) < len(eligible)
    # With every=1 the same per-round draws decide: the subset agrees on the shared rounds.
    dense = _active(AttackConfig(num_malicious=1, start_round=5, stop_round=120, probability=0.6), 1, 200)
    assert got == dense & eligible


def test_target_sample_required_by_the_targeted_sample_attack():
    with pytest.raises(UserError, match=r"attack\.target_sample"):
        scenario_of(tiny_raw(attack={"behaviour": "qat_targeted_sample", "params": {}}), "t")
    with pytest.raises(ValueError, match=r"attack\.target_sample"):  # the wiring step checks it, once
        wire(Scenario(name="t", attack=AttackConfig(behaviour="qat_targeted_sample", num_malicious=1)))
    s = scenario_of(tiny_raw(attack={"behaviour": "qat_targeted_sample", "target_sample": 0, "params": {}}), "t")
    assert s.attack.target_sample == 0


def test_stealth_needs_omniscience_for_a_trained_attack():
    for collusion in ("independent", "aggregation_aware"):
        with pytest.raises(UserError, match="attack.stealth needs collusion 'omniscient'"):
            scenario_of(tiny_raw(attack={"collusion": collusion, "stealth": {"max_norm_ratio": 2.0}}), "t")
    ok = scenario_of(tiny_raw(attack={"collusion": "omniscient", "stealth": {"max_norm_ratio": 2.0}}), "t")
    assert ok.attack.stealth.enabled
    crafted = scenario_of(tiny_raw(attack={"behaviour": "alie", "params": {}, "stealth": {"max_norm_ratio": 1.0}}), "t")
    assert crafted.attack.stealth.enabled


def test_distance_bound_needs_coordinated_colluders():
    with pytest.raises(UserError, match="max_distance_ratio needs coordinated colluders"):
        scenario_of(tiny_raw(attack={"behaviour": "alie", "params": {}, "stealth": {"max_distance_ratio": 1.0}}), "t")
    ok = scenario_of(
        tiny_raw(
            attack={"behaviour": "alie", "params": {}, "collusion": "aggregation_aware", "stealth": {"max_distance_ratio": 1.0}}
        ),
        "t",
    )
    assert ok.attack.stealth.max_distance_ratio == 1.0


@pytest.mark.parametrize(
    "attack,message",
    [
        ({"behaviour": "alie", "params": {}, "boost": 3.0}, "boost has no effect on crafted attacks"),
        (
            {"behaviour": "model_replacement", "collusion": "aggregation_aware", "params": {"scale": 2.0}},
            "applies to independent colluders only",
        ),
        (
            {"behaviour": "hostile_payload", "collusion": "omniscient", "params": {}},
            "takes neither omniscient collusion nor stealth",
        ),
    ],
)
def test_behaviour_specific_settings_that_would_be_ignored_are_refused(attack, message):
    with pytest.raises(UserError, match=message):
        scenario_of(tiny_raw(attack=attack), "t")


def test_boost_is_rejected_under_omniscient_collusion():
    with pytest.raises(UserError, match="boost has no effect with collusion 'omniscient'"):
        scenario_of(tiny_raw(attack={"collusion": "omniscient", "boost": 2.0}), "t")
    assert scenario_of(tiny_raw(attack={"collusion": "omniscient", "boost": 1.0}), "t").attack.boost == 1.0
    assert scenario_of(tiny_raw(attack={"collusion": "aggregation_aware", "boost": 2.0}), "t").attack.boost == 2.0


CASES = [
    ("name: x\nattack: {behaviour: qat_targeted_sample}\n", "needs attack.target_sample"),
    ("name: x\nattack: {num_malicious: 1, stealth: {max_norm_ratio: 1.5}}\n", "attack.stealth needs collusion 'omniscient'"),
    ("name: x\nattack: {collusion: aggregation_aware, stealth: {max_distance_ratio: 1.0}}\n", "attack.stealth needs collusion"),
    ("name: x\nattack: {behaviour: fp_backdoor, stealth: {max_norm_ratio: 2}}\n", "'fp_backdoor'"),
    ("name: x\nattack: {collusion: omniscient, boost: 3}\n", "boost has no effect"),
    ("name: x\nattack: {every: 0}\n", "attack.every"),
    ("name: x\nattack: {probability: 0}\n", "attack.probability"),
    ("name: x\nattack: {probability: 1.5}\n", "attack.probability"),
    ("name: x\nattack: {target_sample: -1}\n", "attack.target_sample"),
    ("name: x\nattack: {stealth: {max_norm_ratio: 0}}\n", "attack.stealth.max_norm_ratio"),
    ("name: x\nattack: {stealth: {radius: 1}}\n", "unknown key 'attack.stealth.radius'"),
    ("name: x\nattack: {behaviour: qat_targeted_class, params: {granularity: per_row}}\n", "params.granularity"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_bad_attack_exits_2_with_one_line(tmp_path, capsys, text, expected):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    out_dir = tmp_path / "run"
    assert main(["run", str(f), "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert expected in err
    assert not out_dir.exists()
