"""Every shipped scenario loads and validates; overrides reach nested keys."""

from pathlib import Path

import pytest

from fl_sim.errors import UserError
from tests.conftest import scenario_file, wired

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
SCENARIOS = sorted(set(ROOT.rglob("*.yaml")) - set(SWEEPS))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scenario_validates(path, tmp_path):
    overrides = [f"data.path={tmp_path}"] if "path: ../shared" in path.read_text() else []
    s = scenario_file(path, overrides)
    wired(s)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_sweep_validates_every_cell(path, tmp_path):
    from fl_sim.sweeps.grid import expand
    from fl_sim.sweeps.spec import load_sweep

    cells = expand(load_sweep(path))
    assert len({c.id for c in cells}) == len(cells) > 1
    for cell in cells:
        overrides = [f"data.path={tmp_path}"] if "idx" in Path(cell.scenario).read_text() else []
        wired(scenario_file(cell.scenario, cell.overrides + overrides))


def test_shipped_scenarios_exist():
    names = {p.name for p in SCENARIOS}
    assert {"quickstart.yaml", "mnist_backdoor_collusion.yaml"} <= names


def test_every_attack_has_a_scenario():
    from fl_sim.components import MALICIOUS

    shipped = {p.stem for p in (ROOT / "attacks").glob("*.yaml")}
    missing = sorted(MALICIOUS - {"hostile_payload"} - shipped)  # hostile_payload is a server-robustness probe
    assert not missing, f"attacks without scenarios/attacks/<name>.yaml: {missing}"


def test_dotted_override_sets_nested_and_params():
    path = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    s = scenario_file(path, ["federation.rounds=7", "attack.params.c1=0.25", "evaluation.precisions=[fp32, int6]"])
    assert s.federation.rounds == 7
    assert wired(s).clients.attack.params.c1 == 0.25
    assert s.evaluation.precisions == ["fp32", "int6"]


def test_override_into_a_scalar_is_rejected():
    path = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    with pytest.raises(UserError, match="seed is not a section"):
        scenario_file(path, ["seed.x=1"])
