from pathlib import Path

import pytest

from robopolicy.sim.task_spec import TaskSpecError, load_task_spec

VALID = """
name = "t"
instruction = "put the red cube on the blue plate"
max_steps = 150
cube_size = 0.045
plate_radius = 0.085
min_separation = 0.17
[cube_region]
x = [0.4, 0.6]
y = [-0.2, 0.2]
yaw = [-0.7, 0.7]
[plate_region]
x = [0.4, 0.6]
y = [-0.2, 0.2]
yaw = [0.0, 0.0]
"""


def test_cube_on_plate_spec_loads() -> None:
    spec = load_task_spec("cube_on_plate")
    assert spec.name == "cube_on_plate"
    assert "cube" in spec.instruction and "plate" in spec.instruction
    assert spec.max_steps > 0
    assert spec.cube_region.x[0] < spec.cube_region.x[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.toml"
    path.write_text(text)
    return path


def test_valid_spec_from_path(tmp_path: Path) -> None:
    assert load_task_spec(_write(tmp_path, VALID)).max_steps == 150


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max_steps = 150", "max_steps = -3", "max_steps"),
        ("max_steps = 150", 'max_steps = "many"', "max_steps"),
        ("cube_size = 0.045", "cube_size = 0.5", "cube_size"),
        ("min_separation = 0.17", "min_separation = 0.01", "min_separation"),
        (
            "x = [0.4, 0.6]\ny = [-0.2, 0.2]\nyaw = [-0.7, 0.7]",
            "x = [0.6, 0.4]\ny = [-0.2, 0.2]\nyaw = [-0.7, 0.7]",
            "cube_region.x",
        ),
        ('instruction = "put the red cube on the blue plate"\n', "", "instruction"),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(TaskSpecError) as err:
        load_task_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"field '{field}'" in message


def test_negative_max_steps_message(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("max_steps = 150", "max_steps = -3"))
    with pytest.raises(TaskSpecError, match=r"field 'max_steps' must be a positive integer, got -3"):
        load_task_spec(path)


def test_missing_task_file() -> None:
    with pytest.raises(TaskSpecError, match="no_such_task"):
        load_task_spec("no_such_task")
