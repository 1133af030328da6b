"""How long the backdoor outlives the attack, on hand-made histories."""

from fl_sim.evaluation.persistence import persistence
from fl_sim.reporting.report import persistence_lines


def _h(rnd: int, active: bool, **asr: float) -> dict:
    return {"round": rnd, "attack_active": active, "precisions": {k: {"backdoor_asr": v} for k, v in asr.items()}}


def test_rounds_to_fade_counts_honest_rounds_after_the_last_attack_round():
    history = [
        _h(0, False, fp32=0.0, int4=0.0),
        _h(1, True, fp32=0.02, int4=0.97),
        _h(2, True, fp32=0.03, int4=0.99),
        _h(3, False, fp32=0.02, int4=0.90),
        _h(4, False, fp32=0.01),  # int4 not evaluated this round
        _h(5, False, fp32=0.01, int4=0.40),
        _h(6, False, fp32=0.01, int4=0.10),
    ]
    p = persistence(history)
    assert p["last_attack_round"] == 2 and p["honest_rounds_after"] == 4
    int4 = p["precisions"]["int4"]
    assert int4["curve"] == [[2, 0.99], [3, 0.90], [5, 0.40], [6, 0.10]]
    assert int4["rounds_to_fade"] == 3 and int4["final_asr"] == 0.10
    assert p["precisions"]["fp32"]["rounds_to_fade"] == 0  # the FP model never obeyed the trigger
    lines = "\n".join(persistence_lines(p))
    assert "| int4 | 3 | 10.00% |" in lines


def test_a_backdoor_that_never_fades_and_runs_without_a_stop():
    never = [_h(0, False, int4=0.0), _h(1, True, int4=0.99), _h(2, False, int4=0.98), _h(3, False, int4=0.95)]
    assert persistence(never)["precisions"]["int4"]["rounds_to_fade"] is None
    assert "not within the run" in "\n".join(persistence_lines(persistence(never)))
    assert persistence([_h(0, False, int4=0.0), _h(1, True, int4=0.9)]) is None  # attacked in the last round
    assert persistence([_h(0, False, int4=0.0), _h(1, False, int4=0.0)]) is None  # never attacked
