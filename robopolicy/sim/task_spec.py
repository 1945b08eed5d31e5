"""Task specification: a small, validated description of one tabletop task, loaded from TOML.

A spec lives at `envs/<task>/task.toml`. Units are metres and radians; positions are in the world
frame, whose origin is the robot base on the table top. Invalid specs raise `TaskSpecError` with a
one-line message naming the file and the field.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError
from robopolicy.paths import envs_dir


class TaskSpecError(UserError, ValueError):
    """A task spec file is missing, malformed, or has an invalid field."""


@dataclass(frozen=True)
class Region:
    """Box from which an object's initial pose is drawn uniformly: x, y in m, yaw in rad, (lo, hi)."""

    x: tuple[float, float]
    y: tuple[float, float]
    yaw: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("x", "y", "yaw"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"field '{name}' must be [lo, hi] with lo <= hi, got {[lo, hi]}")


@dataclass(frozen=True)
class TaskSpec:
    """One cube-on-plate style task.

    max_steps: episode cap in control steps (20 Hz).
    cube_size: cube edge length (m).
    plate_radius: plate radius (m); the plate is a low cylinder.
    min_separation: minimum xy distance (m) between cube and plate centres at initialisation.
    """

    name: str
    instruction: str
    max_steps: int
    cube_size: float
    plate_radius: float
    min_separation: float
    cube_region: Region
    plate_region: Region

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("field 'name' must be a non-empty string")
        if not self.instruction.strip():
            raise ValueError("field 'instruction' must be a non-empty string")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps <= 0:
            raise ValueError(f"field 'max_steps' must be a positive integer, got {self.max_steps!r}")
        if not 0.01 <= self.cube_size <= 0.07:
            raise ValueError(
                f"field 'cube_size' must be in [0.01, 0.07] m (the gripper opens 8 cm), got {self.cube_size}"
            )
        if not 0.03 <= self.plate_radius <= 0.2:
            raise ValueError(f"field 'plate_radius' must be in [0.03, 0.2] m, got {self.plate_radius}")
        if not self.min_separation >= self.plate_radius:
            raise ValueError(
                f"field 'min_separation' must be >= plate_radius ({self.plate_radius}) so the cube starts off "
                f"the plate, got {self.min_separation}"
            )


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "instruction": str,
    "max_steps": int,
    "cube_size": (int, float),
    "plate_radius": (int, float),
    "min_separation": (int, float),
    "cube_region": dict,
    "plate_region": dict,
}


def task_file(task: str) -> Path:
    """Path of `envs/<task>/task.toml`."""
    return envs_dir() / task / "task.toml"


def _parse_region(where: str, field: str, raw: dict[str, Any]) -> Region:
    values: dict[str, tuple[float, float]] = {}
    for key in ("x", "y", "yaw"):
        item = raw.get(key)
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
        ):
            raise TaskSpecError(f"{where}: field '{field}.{key}' must be a list of two numbers, got {item!r}")
        values[key] = (float(item[0]), float(item[1]))
    unknown = set(raw) - {"x", "y", "yaw"}
    if unknown:
        raise TaskSpecError(f"{where}: unknown field '{field}.{sorted(unknown)[0]}'")
    try:
        return Region(**values)
    except ValueError as err:
        message = str(err).replace("field '", f"field '{field}.", 1)
        raise TaskSpecError(f"{where}: {message}") from None


def parse_task_spec(raw: dict[str, Any], where: str) -> TaskSpec:
    """Validate a parsed TOML table into a `TaskSpec`; `where` names the source in error messages."""
    known = {f.name for f in fields(TaskSpec)}
    unknown = set(raw) - known
    if unknown:
        raise TaskSpecError(f"{where}: unknown field '{sorted(unknown)[0]}'")
    for field, kind in _REQUIRED.items():
        if field not in raw:
            raise TaskSpecError(f"{where}: missing field '{field}'")
        value = raw[field]
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else "number"
            if field == "max_steps":
                raise TaskSpecError(f"{where}: field 'max_steps' must be a positive integer, got {value!r}")
            raise TaskSpecError(f"{where}: field '{field}' must be a {expected}, got {value!r}")
    kwargs = dict(raw)
    kwargs["cube_region"] = _parse_region(where, "cube_region", raw["cube_region"])
    kwargs["plate_region"] = _parse_region(where, "plate_region", raw["plate_region"])
    for field in ("cube_size", "plate_radius", "min_separation"):
        kwargs[field] = float(raw[field])
    try:
        return TaskSpec(**kwargs)
    except ValueError as err:
        raise TaskSpecError(f"{where}: {err}") from None


def load_task_spec(task: str | Path) -> TaskSpec:
    """Load a task spec by task name (`envs/<task>/task.toml`) or by an explicit TOML path."""
    path = Path(task) if isinstance(task, Path) or str(task).endswith(".toml") else task_file(str(task))
    where = _display_path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise TaskSpecError(f"{where}: task spec file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise TaskSpecError(f"{where}: invalid TOML: {err}") from None
    return parse_task_spec(raw, where)


def _display_path(path: Path) -> str:
    # Show paths under envs/ as `envs/<task>/task.toml`, the way users know them.
    try:
        return str(Path("envs") / path.resolve().relative_to(envs_dir().resolve()))
    except (ValueError, FileNotFoundError):
        return str(path)
