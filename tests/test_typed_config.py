"""Typed config loading: every field of a TOML table checked against its annotation, errors naming
the file and the field path; the sweep TOML's bad cases that used to be accepted or misread."""

import textwrap
from dataclasses import dataclass, field
from typing import Literal

import pytest

from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.sweep_config import load_sweep_toml
from robopolicy.typed_config import from_table


@dataclass(frozen=True)
class Inner:
    size: int = 1
    scale: float = 1.0


@dataclass(frozen=True)
class Outer:
    name: str = ""
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    ids: tuple[int, ...] = ()
    pair: tuple[str, float] = ("x", 0.0)
    caps: tuple[tuple[str, int], ...] = ()
    inner: Inner = field(default_factory=Inner)
    inners: tuple[Inner, ...] = ()
    limit: int | None = None
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"Outer.limit must be >= 0, got {self.limit}")


def test_builds_nested_values_and_converts_lists_and_ints():
    got = from_table(
        Outer,
        {
            "name": "n",
            "flag": True,
            "mode": "b",
            "ids": [1, 2],
            "pair": ["y", 2],
            "caps": {"s": 220, "l": 520},
            "inner": {"size": 3},
            "inners": [{"scale": 2}, {}],
            "limit": None,
            "weights": {"a": 1},
        },
        "f.toml",
    )
    assert got == Outer(
        "n",
        True,
        "b",
        (1, 2),
        ("y", 2.0),
        (("s", 220), ("l", 520)),
        Inner(3),
        (Inner(scale=2.0), Inner()),
        None,
        {"a": 1.0},
    )
    assert isinstance(got.pair[1], float) and isinstance(got.inners[0].scale, float)
    assert from_table(Outer, {}, "f.toml") == Outer()
    assert from_table(Outer, {"caps": [["s", 1]]}, "f.toml").caps == (("s", 1),)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"ids": "12"}, "f.toml: field 'ids' must be a list, got '12'"),
        ({"ids": [1, "2"]}, "f.toml: field 'ids[1]' must be an integer, got '2'"),
        ({"inner": {"size": 2.7}}, "f.toml: field 'inner.size' must be an integer, got 2.7"),
        ({"inner": {"size": True}}, "f.toml: field 'inner.size' must be an integer, got True"),
        ({"inners": [{}, {"scale": "big"}]}, "f.toml: field 'inners[1].scale' must be a number, got 'big'"),
        ({"flag": 1}, "f.toml: field 'flag' must be true or false, got 1"),
        ({"name": 3}, "f.toml: field 'name' must be a string, got 3"),
        ({"mode": "c"}, "f.toml: field 'mode' must be one of 'a', 'b', got 'c'"),
        ({"pair": ["y"]}, "f.toml: field 'pair' must be a list of 2 values, got ['y']"),
        ({"inner": 3}, "f.toml: field 'inner' must be a table, got 3"),
        ({"limit": "none"}, "f.toml: field 'limit' must be an integer, got 'none'"),
        ({"weights": {"a": "x"}}, "f.toml: field 'weights.a' must be a number, got 'x'"),
        ({"nmae": "x"}, "f.toml: unknown key(s) 'nmae'; known: caps, flag, ids,"),
        ({"inner": {"sise": 1}}, "f.toml: unknown key(s) 'sise' in 'inner'; known: scale, size"),
        ({"limit": -1}, "f.toml: Outer.limit must be >= 0, got -1"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_field(table, message):
    with pytest.raises(UserError) as err:
        from_table(Outer, table, "f.toml")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def _sweep(tmp_path, body: str):
    path = tmp_path / "SWEEP.toml"
    path.write_text('run_dirs = ["run"]\n' + textwrap.dedent(body))
    return load_sweep_toml(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('tasks = ["cube_on_plate"]\nseeds = "12"\n', "field 'seeds' must be a list, got '12'"),
        ('tasks = "cube_on_plate"\n', "field 'tasks' must be a list, got 'cube_on_plate'"),
        (
            'tasks = ["t"]\n[[settings]]\nmax_steps = "ten"\n',
            "field 'settings[0].max_steps' must be an integer, got 'ten'",
        ),
        (
            'tasks = ["t"]\n[[settings]]\nname = "a"\n[[settings]]\nname = "b"\nmax_steps = 2.7\n',
            "field 'settings[1].max_steps' must be an integer, got 2.7",
        ),
        (
            'tasks = ["t"]\n[[settings]]\nsettle_steps = true\n',
            "field 'settings[0].settle_steps' must be an integer",
        ),
        (
            'tasks = ["t"]\nbackend = "gpu"\n',
            "field 'backend' must be one of 'local', 'vector', 'ray', got 'gpu'",
        ),
        ('tasks = ["t"]\n[[settings]]\nmode = "sometimes"\n', "field 'settings[0].mode' must be one of"),
        (
            'tasks = ["t"]\n[[settings]]\nn_action_steps = -1\n',
            "'settings[0]': ExecutionSettings: n_action_steps",
        ),
        ("seeds = [0]\n", "SweepConfig: give suites or tasks"),
    ],
)
def test_sweep_toml_values_are_type_checked(tmp_path, body, message):
    with pytest.raises(UserError) as err:
        _sweep(tmp_path, body)
    assert str(err.value).startswith(f"{tmp_path / 'SWEEP.toml'}: ") and message in str(err.value)


def test_sweep_toml_reads_good_values_and_resolves_paths(tmp_path):
    config = _sweep(tmp_path, 'tasks = ["t"]\nseeds = [1, 2]\n[[settings]]\nensemble_decay = 1\n')
    assert config.seeds == (1, 2) and config.tasks == ("t",) and config.run_dirs == (str(tmp_path / "run"),)
    assert config.settings == (ExecutionSettings(ensemble_decay=1.0),)


def test_execution_settings_round_trip_through_json_form():
    settings = ExecutionSettings(name="x", suite_step_caps=(("b", 2), ("a", 1)), ensemble_decay=0.5)
    assert ExecutionSettings.from_dict(settings.to_dict()).config_hash() == settings.config_hash()
    with pytest.raises(UserError, match="unknown key"):
        ExecutionSettings.from_dict({"mdoe": "chunk"})


def test_read_toml_names_the_file_and_what_it_was_for(tmp_path):
    from robopolicy.typed_config import read_toml

    good = tmp_path / "good.toml"
    good.write_text('name = "x"\n[inner]\nvalue = 2\n')
    assert read_toml(good, "sweep config") == {"name": "x", "inner": {"value": 2}}
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(UserError, match=r"^.*bad.toml: unreadable sweep config file \(.+\)$"):
        read_toml(bad, "sweep config")
    with pytest.raises(UserError, match=r"envs/t/task.toml: no such task spec file$"):
        read_toml(tmp_path / "missing.toml", "task spec", where="envs/t/task.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="unreadable key-mapping file"):
        read_toml(binary, "key-mapping")
