"""Composed-scene spec validation and the pure predicates behind it."""

from pathlib import Path

import numpy as np
import pytest

from robopolicy.sim import predicates as P
from robopolicy.sim.scene_spec import load_spec
from robopolicy.sim.task_spec import TaskSpecError

VALID = """
name = "t"
instruction = "put the cube on the plate"
max_steps = 100
[[objects]]
name = "cube"
type = "cube"
color = "red"
x = [0.4, 0.45]
y = [[-0.2, -0.1], [0.1, 0.2]]
[[objects]]
name = "plate"
type = "plate"
color = "blue"
x = [0.6, 0.6]
y = [0.0, 0.0]
[[objects]]
name = "sw"
type = "switch"
color = "orange"
x = [0.6, 0.6]
y = [0.25, 0.25]
[[goal]]
predicate = "On"
args = ["cube", "plate"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_valid_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, VALID))
    assert [o.name for o in spec.objects] == ["cube", "plate", "sw"]
    assert spec.object("cube").y == ((-0.2, -0.1), (0.1, 0.2))
    assert spec.goal[0].describe() == "On(cube, plate)"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('type = "cube"', 'type = "teapot"', "objects[0].type"),
        ('color = "red"', 'color = "plaid"', "objects[0].color"),
        ("x = [0.4, 0.45]", "x = [0.45, 0.4]", "objects[0].x"),
        ("x = [0.4, 0.45]", 'x = "near"', "objects[0].x"),
        ("y = [[-0.2, -0.1], [0.1, 0.2]]", "y = [[-0.2, -0.1], [0.2]]", "objects[0].y[1]"),
        ('predicate = "On"', 'predicate = "Onto"', "goal[0].predicate"),
        ('args = ["cube", "plate"]', 'args = ["plate", "cube"]', "goal[0].args[0]"),
        ('args = ["cube", "plate"]', 'args = ["cube", "table"]', "goal[0].args[1]"),
        ('args = ["cube", "plate"]', 'args = ["cube", "$cue"]', "goal[0].args[1]"),
        ('args = ["cube", "plate"]', 'args = ["cube"]', "goal[0].args"),
        ("max_steps = 100", "max_steps = -3", "max_steps"),
        ('name = "plate"', 'name = "cube"', "objects[1].name"),
        (
            "x = [0.6, 0.6]\ny = [0.0, 0.0]",
            "x = [0.6, 0.6]\ny = [0.0, 0.0]\njoint = [0.0, 1.0]",
            "objects[1].joint",
        ),
        (
            "x = [0.6, 0.6]\ny = [0.25, 0.25]",
            "x = [0.6, 0.6]\ny = [0.25, 0.25]\njoint = [0.0, 2.0]",
            "objects[2].joint",
        ),
        ('instruction = "put the cube on the plate"', 'instruction = "x"\nhorizon = 3', "horizon"),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(TaskSpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and f"'{field}'" in message and "\n" not in message


def test_drawer_cabinet_must_face_the_robot(tmp_path: Path) -> None:
    text = VALID.replace('type = "plate"', 'type = "drawer_cabinet"').replace(
        "x = [0.6, 0.6]\ny = [0.0, 0.0]", "x = [0.6, 0.6]\ny = [0.0, 0.0]\nyaw = [0.3, 0.3]"
    )
    text = text.replace(
        'args = ["cube", "plate"]', 'args = ["cube", "plate"]\n[[goal]]\npredicate = "Open"\nargs = ["plate"]'
    )
    with pytest.raises(
        TaskSpecError, match=r"field 'objects\[1\]\.yaw' must be \[0, 0\] for a drawer_cabinet"
    ):
        load_spec(_write(tmp_path, text))


def test_cue_validation(tmp_path: Path) -> None:
    text = VALID + '[cue]\nchoices = ["cube", "plate"]\nvisible_steps = 4\n'
    with pytest.raises(TaskSpecError, match=r"field 'cue.choices' must all be of one type"):
        load_spec(_write(tmp_path, text))


def test_spec_name_must_match_folder(tmp_path: Path) -> None:
    folder = tmp_path / "other_name"
    folder.mkdir()
    (folder / "task.toml").write_text(VALID)
    with pytest.raises(TaskSpecError, match=r"task.toml: field 'name' must equal the task folder name"):
        load_spec(folder / "task.toml")


def test_to_local_xy_and_footprints() -> None:
    local = P.to_local_xy(np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.pi / 2)
    np.testing.assert_allclose(local, [1.0, 0.0], atol=1e-12)  # +y in the world is +x of a frame turned 90°
    assert P.within_footprint(np.array([0.05, 0.05]), (0.06, 0.06), round_shape=False)
    assert not P.within_footprint(np.array([0.05, 0.05]), (0.06, 0.06), round_shape=True)  # |.|=0.0707


def test_on_surface_and_inside() -> None:
    kw = dict(obj_speed=0.0, in_contact=False)
    top = 0.04
    assert P.on_surface(np.array([0, 0, top + 0.0225]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **kw)
    assert not P.on_surface(np.array([0, 0, top + 0.05]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **kw)
    moving = dict(obj_speed=0.2, in_contact=True)
    assert not P.on_surface(
        np.array([0, 0, top + 0.0225]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **moving
    )
    assert P.inside(
        np.array([0, 0, 0.03]), np.array([0.05, -0.05]), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0
    )
    assert not P.inside(
        np.array([0, 0, 0.03]), np.array([0.08, 0.0]), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0
    )
    assert not P.inside(np.array([0, 0, 0.2]), np.zeros(2), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0)


def test_joint_and_memory_predicates() -> None:
    assert P.joint_fraction(0.06, 0.12) == 0.5 and P.joint_fraction(-0.01, 0.12) == 0.0
    assert P.farther_of(np.array([0.4, 0.1]), np.array([0.6, 0.17]), np.array([0.6, -0.17])) == 1
    assert P.farther_of(np.array([0.4, -0.1]), np.array([0.6, 0.17]), np.array([0.6, -0.17])) == 0
    start = np.array([0.45, 0.1])
    assert P.at_start(np.array([0.46, 0.11, 0.0225]), 0.0225, start, obj_speed=0.0)
    assert not P.at_start(np.array([0.50, 0.11, 0.0225]), 0.0225, start, obj_speed=0.0)
    assert not P.at_start(np.array([0.45, 0.1, 0.08]), 0.0225, start, obj_speed=0.0)
