"""The task format: loading, validation with one-line errors naming file and field, optional fields."""

from pathlib import Path

import pytest

from robopolicy.errors import UserError
from robopolicy.tasks.object_library import OBJECT_TYPES
from robopolicy.tasks.scene_mjcf import RobotMjcf, scene_mjcf
from robopolicy.tasks.spec import CameraFraming, TaskSpecError, load_task_spec

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
    spec = load_task_spec(_write(tmp_path, VALID))
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
        ('type = "plate"', 'type = "plate"\nradius = 0.5', "objects[1].radius"),
        ('type = "cube"', 'type = "cube"\nradius = 0.05', "objects[0].radius"),
        ("max_steps = 100", "max_steps = 100\nmin_separation = -0.1", "min_separation"),
        ("max_steps = 100", "max_steps = 100\n[agentview]\nfovy = 170", "agentview.fovy"),
        ("max_steps = 100", "max_steps = 100\n[agentview]\npos = [1, 0]", "agentview.pos"),
        ("max_steps = 100", "max_steps = 100\n[agentview]\npos = [0.55, 0, 0]", "agentview.target"),
        ("max_steps = 100", "max_steps = 100\n[agentview]\nzoom = 2", "agentview.zoom"),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(TaskSpecError) as err:
        load_task_spec(path)
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
        load_task_spec(_write(tmp_path, text))


def test_cue_validation(tmp_path: Path) -> None:
    text = VALID + '[cue]\nchoices = ["cube", "plate"]\nvisible_steps = 4\n'
    with pytest.raises(TaskSpecError, match=r"field 'cue.choices' must all be of one type"):
        load_task_spec(_write(tmp_path, text))


def test_spec_name_must_match_folder(tmp_path: Path) -> None:
    folder = tmp_path / "other_name"
    folder.mkdir()
    (folder / "task.toml").write_text(VALID)
    with pytest.raises(TaskSpecError, match=r"task.toml: field 'name' must equal the task folder name"):
        load_task_spec(folder / "task.toml")


def test_cube_on_plate_is_a_task_like_any_other() -> None:
    spec = load_task_spec("cube_on_plate")
    assert [(o.name, o.type) for o in spec.objects] == [("cube", "cube"), ("plate", "plate")]
    assert [t.describe() for t in spec.goal] == ["On(cube, plate)"]
    # Its own framing, plate size and spacing, from the optional fields.
    assert spec.agentview == CameraFraming(pos=(0.98, 0.0, 0.56), target=(0.48, 0.0, 0.08), fovy=45.0)
    plate = spec.object("plate").kind
    assert plate.footprint == (0.085, 0.085) and plate.radius == pytest.approx(0.087)
    assert spec.min_separation == 0.17
    assert OBJECT_TYPES["plate"].footprint == (0.06, 0.06)  # the library is untouched


def test_optional_fields_default_and_reach_the_scene(tmp_path: Path) -> None:
    spec = load_task_spec(_write(tmp_path, VALID))
    assert spec.agentview == CameraFraming() and spec.min_separation == 0.0
    assert spec.object("plate").radius is None and spec.object("plate").kind is OBJECT_TYPES["plate"]
    robot = RobotMjcf(defaults="", body="", actuators="", contact_excludes="")
    framed = VALID.replace('type = "plate"', 'type = "plate"\nradius = 0.1') + (
        "[agentview]\npos = [1.0, 0.0, 0.5]\ntarget = [0.5, 0.0, 0.0]\nfovy = 50\n"
    )
    xml = scene_mjcf(load_task_spec(_write(tmp_path, framed)), robot)
    assert '<geom name="plate" type="cylinder" size="0.1 0.006"' in xml
    assert 'pos="1 0 0.5"' in xml and 'fovy="50.0"' in xml
    assert '<geom name="plate" type="cylinder" size="0.06 0.006"' in scene_mjcf(spec, robot)


def test_unknown_task_names_the_folders_searched() -> None:
    with pytest.raises(UserError, match=r"unknown task 'no_such_task': no no_such_task/task.toml in .*envs"):
        load_task_spec("no_such_task")
