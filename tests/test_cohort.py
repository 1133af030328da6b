"""Roles and cohorts are pure functions of the seed."""

from fl_sim.cohort import cohort_size, malicious_ids, sample_cohort


def test_roles_deterministic_and_sized():
    assert malicious_ids(5, 20, 4) == malicious_ids(5, 20, 4)
    assert len(malicious_ids(5, 20, 4)) == 4
    assert malicious_ids(5, 20, 4) != malicious_ids(6, 20, 4)


def test_cohort_sampling():
    assert cohort_size(20, 0.5, 2) == 10
    assert cohort_size(20, 0.01, 3) == 3
    assert sample_cohort(1, 3, 20, 20) == list(range(20))
    c = sample_cohort(1, 3, 20, 10)
    assert c == sample_cohort(1, 3, 20, 10) and len(set(c)) == 10
    assert c != sample_cohort(1, 4, 20, 10)
