"""The sweep file and its expansion into cells: validation errors, paths, product order, ids, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_sim.config.loader import parse_overrides
from fl_sim.errors import UserError
from fl_sim.sweeps.grid import MAX_ID_LENGTH, encode_value, expand
from fl_sim.sweeps.spec import DEFAULT_METRICS, SweepSpec, axes, load_sweep


def _scenarios(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        p = tmp_path / f"{name}.yaml"
        p.write_text("name: t\n", encoding="utf-8")
        out.append(p)
    return out


def _sweep(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.yaml"
    p.write_text(text, encoding="utf-8")
    return p


ERRORS = [
    ("name: s\nscenario: a.yaml\nfoo: 1\n", "unknown key 'foo'"),
    (
        "name: s\nscenario: a.yaml\nheatmaps: [{rows: x, cols: y, metric: fp32.accuracy, colour: red}]\n",
        "unknown key 'heatmaps.0.colour'",
    ),
    ("name: s\nscenario: a.yaml\ngrid: {strategy.name: []}\n", "strategy.name: needs at least one value"),
    ("name: s\nscenario: a.yaml\ngrid: {seed: [0, 1, 0]}\n", "value 0 is listed twice"),
    ("name: s\nscenario: a.yaml\ngrid: {seed: [0, 1]}\nset: {seed: 3}\n", "'seed' is in both 'set' and 'grid'"),
    ("name: s\nscenario: a.yaml\nset: {scenario: x}\n", "'scenario' is reserved"),
    ("name: s\nscenario: a.yaml\ngrid: {'a..b': [1]}\n", "not a dotted scenario key"),
    (
        "name: s\nscenario: a.yaml\ngrid: {seed: [0, 1]}\nheatmaps: [{rows: seed, cols: strategy.name, metric: fp32.accuracy}]\n",
        "heatmaps.0.cols: 'strategy.name' is not an axis",
    ),
    (
        "name: s\nscenario: a.yaml\ngrid: {seed: [0]}\nheatmaps: [{rows: scenario, cols: seed, metric: fp32.accuracy}]\n",
        "heatmaps.0.rows: 'scenario' is not an axis",
    ),
    (
        "name: s\nscenario: a.yaml\ngrid: {seed: [0]}\nheatmaps: [{rows: seed, cols: seed, metric: fp32.accuracy}]\n",
        "rows and cols are both 'seed'",
    ),
    (
        "name: s\nscenario: [a.yaml, b.yaml]\ngrid: {seed: [0]}\nheatmaps: [{rows: scenario, cols: seed, metric: int2.accuracy}]\n",
        "heatmaps.0.metric: 'int2.accuracy' is not in 'metrics'",
    ),
    ("name: s\nscenario: [a.yaml, sub/a.yaml]\n", "stem 'a' repeats"),
    ("name: s\nscenario: []\n", "scenario"),
    ("name: 'a/b'\nscenario: a.yaml\n", "must be a directory name"),
    ("name: s\nscenario: a.yaml\nparallel: 0\n", "parallel"),
    ("name: s\nscenario: a.yaml\ncell_cpus: 0\n", "cell_cpus"),
    ("scenario: a.yaml\n", "missing key 'name'"),
    ("schema_version: 2\nname: s\nscenario: a.yaml\n", "schema_version"),
    ("name: s\nscenario: nosuch.yaml\n", "scenario: file not found"),
    ("name: s\nscenario: [a.yaml\n", "malformed YAML"),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_bad_sweep_is_one_line_user_error(tmp_path: Path, text: str, expected: str) -> None:
    _scenarios(tmp_path, "a", "b")
    (tmp_path / "sub").mkdir()
    _scenarios(tmp_path / "sub", "a")
    path = _sweep(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_sweep(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(path) in message or "malformed" in message


def test_missing_sweep_file_and_missing_scenario_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")
    path = _sweep(tmp_path, "name: s\nscenario: gone.yaml\n")
    with pytest.raises(UserError, match=str(tmp_path / "gone.yaml")):
        load_sweep(path)


def test_relative_paths_resolved_against_sweep_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scen").mkdir()
    a, b = _scenarios(tmp_path / "scen", "a", "b")
    path = _sweep(tmp_path, f"name: s\nscenario: [scen/a.yaml, {b}]\n")
    monkeypatch.chdir(a.parent)  # the working directory must not matter
    spec = load_sweep(path)
    assert spec.scenario == [str(a), str(b)]
    assert all(Path(s).is_absolute() for s in spec.scenario)


def test_defaults_and_single_scenario_string(tmp_path: Path) -> None:
    _scenarios(tmp_path, "a")
    spec = load_sweep(_sweep(tmp_path, "name: s\nscenario: a.yaml\n"))
    assert spec.scenario == [str(tmp_path / "a.yaml")]
    assert (spec.grid, spec.set, spec.parallel, spec.cell_cpus, spec.heatmaps) == ({}, {}, 1, 1.0, [])
    assert spec.metrics == list(DEFAULT_METRICS)
    assert axes(spec) == []
    [cell] = expand(spec)
    assert (cell.id, cell.axes, cell.overrides) == ("a", {}, [])


def test_expand_is_the_product_in_order(tmp_path: Path) -> None:
    a, b = _scenarios(tmp_path, "qat_backdoor", "baseline")
    spec = SweepSpec(
        name="s",
        scenario=[str(a), str(b)],
        grid={"strategy.name": ["fedavg", "krum"], "seed": [0, 1]},
        set={"federation.rounds": 2},
    )
    assert axes(spec) == ["scenario", "strategy.name", "seed"]
    cells = expand(spec)
    assert [tuple(c.axes.values()) for c in cells] == [
        (s, n, seed) for s in ("qat_backdoor", "baseline") for n in ("fedavg", "krum") for seed in (0, 1)
    ]
    assert cells[2].id == "qat_backdoor__strategy.name=krum__seed=0"
    assert cells[2].scenario == str(a) and cells[4].scenario == str(b)
    assert cells[2].overrides == ["federation.rounds=2", "strategy.name=krum", "seed=0"]
    assert len({c.id for c in cells}) == len(cells) == 8
    assert expand(spec) == cells  # deterministic


ROUND_TRIP = [
    0,
    7,
    -3,
    0.1,
    1e-20,
    2.5e10,
    "krum",
    "08",
    "1e3",
    "true",
    "null",
    "",
    "a: b",
    "x=y",
    "with space",
    True,
    False,
    None,
    [8, 4],
    ["int8", "int4"],
    {"a": 1, "b": [1, 2]},
    {"z": None, "a": "08"},
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=repr)
def test_override_round_trips_through_parse_overrides(value: object) -> None:
    [(key, back)] = parse_overrides([f"attack.params.x={encode_value(value)}"])
    assert key == "attack.params.x"
    assert back == value and type(back) is type(value)
    if isinstance(value, dict):
        assert list(back) == list(value)  # key order kept


def test_cell_overrides_round_trip(tmp_path: Path) -> None:
    [a] = _scenarios(tmp_path, "a")
    grid = {"attack.params.bits": [[8, 4], [4]], "data.path": ["08", "x y"], "flag": [True, None]}
    spec = SweepSpec(name="s", scenario=str(a), grid=grid, set={"description": "a: b"})
    for cell in expand(spec):
        parsed = parse_overrides(cell.overrides)
        assert parsed == [("description", "a: b"), *cell.axes.items()]


def test_ids_are_safe_short_and_distinct(tmp_path: Path) -> None:
    [a] = _scenarios(tmp_path, "a")
    long = "x" * 200
    spec = SweepSpec(name="s", scenario=str(a), grid={"data.path": ["a b", "a-b", "a/b", long, long + "y"]})
    ids = [c.id for c in expand(spec)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= MAX_ID_LENGTH for i in ids)
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=-") for i in ids)
    assert ids[0].startswith("a__data.path=a-b-") and ids[1].startswith("a__data.path=a-b-")
