"""The task format: objects from the library, their initial-pose regions, a goal, a cue, the framing.

A task is a folder `<task>/task.toml` found on the task search path (`robopolicy.tasks.task_path`).
Units: metres, radians, control steps at 20 Hz; positions are in the world frame (origin at the robot
base on the table top, x away from the robot, y to its left, z up).

    name = "..."; instruction = "..."; max_steps = 300; cameras = ["agentview", "wrist"]
    min_separation = 0.0   # optional: least xy distance between any two object centres at the start
    [agentview]            # optional: the front camera's framing (default: the whole workspace)
    pos = [0.98, 0.0, 0.85]; target = [0.55, 0.0, 0.0]; fovy = 38.0
    [[objects]]            # one table per object
    name = "plate"; type = "plate"; color = "blue"
    x = [0.50, 0.52]       # uniform initial x; a list of intervals picks one interval uniformly first
    y = [[-0.2, -0.1], [0.1, 0.2]]
    yaw = [0.0, 0.0]       # optional; default 0
    joint = [0.0, 0.0]     # articulated only: initial opening as a fraction of the joint's travel
    radius = 0.085         # round supports (plate, peg) only: footprint radius instead of the library's
    [[goal]]               # success = every term true at the same step (checked every step)
    predicate = "On"; args = ["cube", "plate"]
    once = false           # true: the term only has to have held at some earlier step
    [cue]                  # memory tasks: one of `choices` is lit for the first `visible_steps`
    choices = ["left_button", "right_button"]; visible_steps = 6

Goal arguments may be "$cue" (the lit choice) or "$not_cue" (the other of two choices). `cameras` is the
camera set the task is meant to be observed with (checked against the scene's cameras); an env renders
whichever cameras its `EnvConfig` asks for.
Invalid specs raise `TaskSpecError` naming the file and the field.

A task name with a variant suffix (`TASK+oracle`, `robopolicy.tasks.variants`) loads TASK's spec with
the variant applied; the variant is no field of the file, so there is one task format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError
from robopolicy.paths import envs_dir
from robopolicy.tasks.object_library import COLORS, OBJECT_TYPES, ObjectType, Role
from robopolicy.tasks.task_path import TASK_FILE, find_task
from robopolicy.tasks.variants import ORACLE, split_variant, with_variant
from robopolicy.typed_config import read_toml


class TaskSpecError(UserError, ValueError):
    """A task spec file is missing, malformed, or has an invalid field."""


SCENE_CAMERAS: tuple[str, ...] = ("agentview", "wrist")
CUE = "$cue"
NOT_CUE = "$not_cue"

# Predicate name -> the roles allowed for each argument.
_GRASP = (Role.GRASPABLE,)
PREDICATE_ARGS: dict[str, tuple[tuple[Role, ...], ...]] = {
    "On": (_GRASP, (Role.SUPPORT,)),
    "In": (_GRASP, (Role.CONTAINER, Role.DRAWER)),
    "Open": ((Role.DRAWER, Role.DOOR),),
    "Close": ((Role.DRAWER, Role.DOOR),),
    "TurnOn": ((Role.BUTTON, Role.SWITCH),),
    "TurnOff": ((Role.BUTTON, Role.SWITCH),),
    "Lifted": (_GRASP,),
    # Memory predicates: they compare with where an object was when the episode started.
    "OnFarther": (_GRASP, (Role.SUPPORT,), (Role.SUPPORT,)),
    "AtStart": (_GRASP,),
}


RADIUS_RANGE = (0.03, 0.2)  # m: allowed footprint radii of a resized round support
FOVY_RANGE = (10.0, 120.0)  # degrees


@dataclass(frozen=True)
class ObjectSpec:
    """One object: library type, colour, and its initial-pose distribution (m, rad).

    radius: round supports only: footprint radius (m) instead of the library's (None: the library's).
    """

    name: str
    type: str
    color: str
    x: tuple[tuple[float, float], ...]
    y: tuple[tuple[float, float], ...]
    yaw: tuple[float, float] = (0.0, 0.0)
    joint: tuple[float, float] = (0.0, 0.0)
    radius: float | None = None

    @cached_property
    def kind(self) -> ObjectType:
        """The library type, resized where `radius` says so."""
        kind = OBJECT_TYPES[self.type]
        return kind if self.radius is None else kind.with_radius(self.radius)


@dataclass(frozen=True)
class GoalTerm:
    predicate: str
    args: tuple[str, ...]
    once: bool = False

    def describe(self) -> str:
        return f"{'Once' if self.once else ''}{self.predicate}({', '.join(self.args)})"


@dataclass(frozen=True)
class CueSpec:
    """One of `choices` (object names) is lit for the first `visible_steps` control steps."""

    choices: tuple[str, ...]
    visible_steps: int


@dataclass(frozen=True)
class CameraFraming:
    """Where the front (agentview) camera sits and looks: world-frame points (m), vertical field of view (deg).

    The default frames the whole workspace (x 0.35-0.8 m, y ±0.3 m, a cabinet included) in a 128² image
    from opposite the robot, like LIBERO's agentview, so that a 4.5 cm cube spans ~5 px; a task with a
    smaller layout can frame it more tightly.
    """

    pos: tuple[float, float, float] = (0.98, 0.0, 0.85)
    target: tuple[float, float, float] = (0.55, 0.0, 0.0)
    fovy: float = 38.0


@dataclass(frozen=True)
class TaskSpec:
    """One task; see the module docstring for the fields and their units.

    min_separation: least xy distance (m) between the centres of any two objects in an initial layout;
        the objects' clearance radii keep them apart as well (0: the radii alone).
    oracle: the cue stays lit for the whole episode (the `+oracle` variant; never read from a file).
        `name` stays the task's own, so the scene and its random streams are the task's.
    """

    name: str
    instruction: str
    max_steps: int
    objects: tuple[ObjectSpec, ...]
    goal: tuple[GoalTerm, ...]
    cue: CueSpec | None = None
    cameras: tuple[str, ...] = SCENE_CAMERAS
    agentview: CameraFraming = CameraFraming()
    min_separation: float = 0.0
    oracle: bool = False

    def __post_init__(self) -> None:
        if self.oracle and self.cue is None:
            raise ValueError(f"TaskSpec {self.name!r}: oracle needs a [cue]")

    @property
    def label(self) -> str:
        """The name results are kept under: `name`, or `name+oracle` for the oracle variant."""
        return with_variant(self.name, ORACLE if self.oracle else None)

    def object(self, name: str) -> ObjectSpec:
        return next(o for o in self.objects if o.name == name)


def _fail(where: str, field: str, message: str) -> TaskSpecError:
    return TaskSpecError(f"{where}: field '{field}' {message}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _interval(where: str, field: str, value: Any) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)):
        raise _fail(where, field, f"must be a list of two numbers [lo, hi], got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise _fail(where, field, f"must have lo <= hi, got {value!r}")
    return lo, hi


def _point(where: str, field: str, value: Any) -> tuple[float, float, float]:
    if not (isinstance(value, list) and len(value) == 3 and all(_number(v) for v in value)):
        raise _fail(where, field, f"must be a list of three numbers [x, y, z], got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _float_in(where: str, field: str, value: Any, lo: float, hi: float, unit: str) -> float:
    if not (_number(value) and lo <= value <= hi):
        raise _fail(where, field, f"must be a number in [{lo:g}, {hi:g}] {unit}, got {value!r}")
    return float(value)


def _intervals(where: str, field: str, value: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return tuple(_interval(where, f"{field}[{i}]", v) for i, v in enumerate(value))
    return (_interval(where, field, value),)


def _string(where: str, field: str, raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, field, f"must be a non-empty string, got {value!r}")
    return value


def _check_keys(where: str, prefix: str, raw: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TaskSpecError(f"{where}: unknown field '{prefix}{unknown[0]}'")


def _parse_object(where: str, i: int, raw: Any) -> ObjectSpec:
    field = f"objects[{i}]"
    if not isinstance(raw, dict):
        raise _fail(where, field, "must be a table")
    _check_keys(where, f"{field}.", raw, {"name", "type", "color", "x", "y", "yaw", "joint", "radius"})
    name = _string(where, f"{field}.name", raw, "name")
    kind = _string(where, f"{field}.type", raw, "type")
    if kind not in OBJECT_TYPES:
        raise _fail(where, f"{field}.type", f"must be one of {sorted(OBJECT_TYPES)}, got {kind!r}")
    color = _string(where, f"{field}.color", raw, "color")
    if color not in COLORS:
        raise _fail(where, f"{field}.color", f"must be one of {sorted(COLORS)}, got {color!r}")
    for key in ("x", "y"):
        if key not in raw:
            raise TaskSpecError(f"{where}: missing field '{field}.{key}'")
    joint = _interval(where, f"{field}.joint", raw.get("joint", [0.0, 0.0]))
    if "joint" in raw and not OBJECT_TYPES[kind].articulated:
        raise _fail(where, f"{field}.joint", f"is only for articulated types, not {kind!r}")
    if not (joint[0] >= 0.0 and joint[1] <= 1.0):
        raise _fail(where, f"{field}.joint", f"must lie in [0, 1] (fraction of travel), got {list(joint)}")
    yaw = _interval(where, f"{field}.yaw", raw.get("yaw", [0.0, 0.0]))
    if OBJECT_TYPES[kind].role is Role.DRAWER and yaw != (0.0, 0.0):
        # The drawer primitive pulls along -x: the cabinet must face the robot.
        raise _fail(
            where,
            f"{field}.yaw",
            f"must be [0, 0] for a drawer_cabinet (front facing the robot), got {list(yaw)}",
        )
    radius = None
    if "radius" in raw:
        if not OBJECT_TYPES[kind].resizable:
            resizable = sorted(t for t, o in OBJECT_TYPES.items() if o.resizable)
            raise _fail(where, f"{field}.radius", f"is only for the types {resizable}, not {kind!r}")
        radius = _float_in(where, f"{field}.radius", raw["radius"], *RADIUS_RANGE, "m")
    return ObjectSpec(
        name=name,
        type=kind,
        color=color,
        x=_intervals(where, f"{field}.x", raw["x"]),
        y=_intervals(where, f"{field}.y", raw["y"]),
        yaw=yaw,
        joint=joint,
        radius=radius,
    )


def _parse_cue(where: str, raw: Any, objects: dict[str, ObjectSpec]) -> CueSpec:
    if not isinstance(raw, dict):
        raise _fail(where, "cue", "must be a table")
    _check_keys(where, "cue.", raw, {"choices", "visible_steps"})
    choices = raw.get("choices")
    if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
        raise _fail(where, "cue.choices", f"must be a list of at least two object names, got {choices!r}")
    for j, c in enumerate(choices):
        if c not in objects:
            raise _fail(where, f"cue.choices[{j}]", f"names no object: {c!r}")
    if len({objects[c].type for c in choices}) != 1:
        raise _fail(where, "cue.choices", "must all be of one type, so that only the light tells them apart")
    steps = raw.get("visible_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise _fail(where, "cue.visible_steps", f"must be a positive integer, got {steps!r}")
    return CueSpec(choices=tuple(choices), visible_steps=steps)


def _parse_goal(
    where: str, i: int, raw: Any, objects: dict[str, ObjectSpec], cue: CueSpec | None
) -> GoalTerm:
    field = f"goal[{i}]"
    if not isinstance(raw, dict):
        raise _fail(where, field, "must be a table")
    _check_keys(where, f"{field}.", raw, {"predicate", "args", "once"})
    predicate = _string(where, f"{field}.predicate", raw, "predicate")
    if predicate not in PREDICATE_ARGS:
        raise _fail(
            where, f"{field}.predicate", f"must be one of {sorted(PREDICATE_ARGS)}, got {predicate!r}"
        )
    roles = PREDICATE_ARGS[predicate]
    args = raw.get("args")
    if not (isinstance(args, list) and len(args) == len(roles) and all(isinstance(a, str) for a in args)):
        raise _fail(where, f"{field}.args", f"must be a list of {len(roles)} object names for {predicate}")
    for j, (arg, allowed) in enumerate(zip(args, roles, strict=True)):
        arg_field = f"{field}.args[{j}]"
        if arg in (CUE, NOT_CUE):
            if cue is None:
                raise _fail(where, arg_field, f"uses {arg} but the spec has no [cue]")
            if arg == NOT_CUE and len(cue.choices) != 2:
                raise _fail(where, arg_field, f"{NOT_CUE} needs a cue with exactly two choices")
            arg = cue.choices[0]
        if arg not in objects:
            raise _fail(where, arg_field, f"names no object: {arg!r}")
        role = objects[arg].kind.role
        if role not in allowed:
            names = " or ".join(r.value for r in allowed)
            raise _fail(
                where, arg_field, f"must be a {names} object for {predicate}, got {arg!r} ({role.value})"
            )
    once = raw.get("once", False)
    if not isinstance(once, bool):
        raise _fail(where, f"{field}.once", f"must be true or false, got {once!r}")
    return GoalTerm(predicate=predicate, args=tuple(args), once=once)


def _parse_framing(where: str, raw: Any) -> CameraFraming:
    if not isinstance(raw, dict):
        raise _fail(where, "agentview", "must be a table")
    _check_keys(where, "agentview.", raw, {"pos", "target", "fovy"})
    default = CameraFraming()
    pos = _point(where, "agentview.pos", raw["pos"]) if "pos" in raw else default.pos
    target = _point(where, "agentview.target", raw["target"]) if "target" in raw else default.target
    if math.dist(pos, target) < 0.05:
        raise _fail(
            where, "agentview.target", f"must lie at least 5 cm from agentview.pos, got {list(target)}"
        )
    fovy = _float_in(where, "agentview.fovy", raw.get("fovy", default.fovy), *FOVY_RANGE, "degrees")
    return CameraFraming(pos=pos, target=target, fovy=fovy)


_TOP_LEVEL = {
    "name",
    "instruction",
    "max_steps",
    "cameras",
    "objects",
    "goal",
    "cue",
    "agentview",
    "min_separation",
}


def parse_task_spec(raw: dict[str, Any], where: str) -> TaskSpec:
    """Validate a parsed TOML table into a `TaskSpec`; `where` names the source in error messages."""
    _check_keys(where, "", raw, _TOP_LEVEL)
    name = _string(where, "name", raw, "name")
    instruction = _string(where, "instruction", raw, "instruction")
    max_steps = raw.get("max_steps")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
        raise _fail(where, "max_steps", f"must be a positive integer, got {max_steps!r}")
    cameras = raw.get("cameras", list(SCENE_CAMERAS))
    if not (isinstance(cameras, list) and cameras and all(c in SCENE_CAMERAS for c in cameras)):
        raise _fail(where, "cameras", f"must be a non-empty list from {list(SCENE_CAMERAS)}, got {cameras!r}")
    raw_objects = raw.get("objects")
    if not isinstance(raw_objects, list) or not raw_objects:
        raise _fail(where, "objects", "must be a non-empty array of tables ([[objects]])")
    objects = [_parse_object(where, i, o) for i, o in enumerate(raw_objects)]
    by_name: dict[str, ObjectSpec] = {}
    for i, obj in enumerate(objects):
        if obj.name in by_name:
            raise _fail(where, f"objects[{i}].name", f"repeats the name {obj.name!r}")
        by_name[obj.name] = obj
    cue = _parse_cue(where, raw["cue"], by_name) if "cue" in raw else None
    raw_goal = raw.get("goal")
    if not isinstance(raw_goal, list) or not raw_goal:
        raise _fail(where, "goal", "must be a non-empty array of tables ([[goal]])")
    goal = tuple(_parse_goal(where, i, g, by_name, cue) for i, g in enumerate(raw_goal))
    return TaskSpec(
        name=name,
        instruction=instruction,
        max_steps=max_steps,
        objects=tuple(objects),
        goal=goal,
        cue=cue,
        cameras=tuple(cameras),
        agentview=_parse_framing(where, raw["agentview"]) if "agentview" in raw else CameraFraming(),
        min_separation=_float_in(where, "min_separation", raw.get("min_separation", 0.0), 0.0, 1.0, "m"),
    )


def task_file(task: str | Path) -> Path:
    """The spec file of a task given by name (its `task.toml`, found on the task search path) or as a
    path to a `.toml` file (returned as it is)."""
    if isinstance(task, Path) or str(task).endswith(".toml"):
        return Path(task)
    return find_task(task) / TASK_FILE


def load_task_spec(task: str | Path) -> TaskSpec:
    """Load a task spec by task name (searched on the task path; a variant suffix such as `+oracle`
    is applied to the task's spec) or from an explicit TOML path."""
    variant = None if isinstance(task, Path) or str(task).endswith(".toml") else split_variant(task)[1]
    path = task_file(task)
    where = _display_path(path)
    spec = parse_task_spec(read_toml(path, "task spec", where, TaskSpecError), where)
    if path.name == TASK_FILE and spec.name != path.parent.name:
        # Datasets and init states are keyed by the folder name; the two must agree.
        raise TaskSpecError(
            f"{where}: field 'name' must equal the task folder name {path.parent.name!r}, got {spec.name!r}"
        )
    if variant == ORACLE:
        if spec.cue is None:
            raise TaskSpecError(
                f"task {task!r}: the +oracle variant keeps the memory cue lit, but {where} has no [cue]"
            )
        spec = replace(spec, oracle=True)
    return spec


def _display_path(path: Path) -> str:
    # Bundled tasks show as `envs/<task>/task.toml`, the way users know them; others as given.
    try:
        return str(Path("envs") / path.resolve().relative_to(envs_dir().resolve()))
    except (ValueError, FileNotFoundError):
        return str(path)
