"""The object library of the composed task suites: shapes, roles and MJCF of every object type.

Units are metres. Two frames are used:
- graspable objects (free bodies) have their origin at their geometric centre;
- fixtures (static bodies placed by mocap, possibly with articulated children) have their origin at the
  centre of their footprint on the table top.

Shapes are a handful of primitive geoms with low-slice round parts, so two 128² cameras stay cheap to
render on a CPU; colours are saturated and distinct so objects stay apart at 64-128 px.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial

import numpy as np

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.08, 0.06),
    "green": (0.1, 0.7, 0.15),
    "blue": (0.1, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.55, 0.15, 0.8),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (1.0, 0.45, 0.7),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.1),
    "brown": (0.45, 0.27, 0.1),
    "grey": (0.5, 0.5, 0.52),
}
# The colour a cue (a flashing light) takes while it is shown; brighter than any palette colour.
CUE_RGBA = (1.0, 1.0, 0.75, 1.0)


class Role(Enum):
    """What an object is for; predicates and expert primitives dispatch on it."""

    GRASPABLE = "graspable"  # free body the gripper picks up
    SUPPORT = "support"  # static surface objects are put on
    CONTAINER = "container"  # static open box objects are put in
    DRAWER = "drawer"  # cabinet with a sliding drawer: a container that opens and closes
    DOOR = "door"  # cabinet with a hinged door that swings open towards the robot
    BUTTON = "button"  # push button that stays pressed (on) once pushed
    SWITCH = "switch"  # slider switch, on at +y end, off at -y end


@dataclass(frozen=True)
class ObjectType:
    """Geometry and role of one object type.

    half_height: graspable: centre to bottom (m). Fixtures: 0.
    radius: xy radius (m) that the layout keeps clear of other objects.
    grasp_period: graspable: yaw period (rad) of the grasp (pi/2 cube, pi mug/block, 0 = round).
    top: support: height of the top surface above the table (m).
    footprint: support/container: half extents (x, y) of the usable area in the object frame (m);
        round supports give (r, r) and `round_footprint`.
    floor: container: height of the inside floor (m); wall_top: height of its walls (m).
    travel: articulated part: joint range (m) from closed/off (0) to open/on (travel).
    """

    name: str
    role: Role
    radius: float
    body: Callable[[str, str], str]
    half_height: float = 0.0
    grasp_period: float = 0.0
    top: float = 0.0
    footprint: tuple[float, float] = (0.0, 0.0)
    round_footprint: bool = False
    floor: float = 0.0
    wall_top: float = 0.0
    travel: float = 0.0

    @property
    def articulated(self) -> bool:
        return self.role in (Role.DRAWER, Role.DOOR, Role.BUTTON, Role.SWITCH)

    @property
    def resizable(self) -> bool:
        """Round supports (plate, peg) can be built with another footprint radius."""
        return self.round_footprint

    def with_radius(self, radius: float) -> ObjectType:
        """This round support with footprint radius `radius` (m); its clearance grows alike."""
        if not self.resizable:
            raise ValueError(f"object type {self.name!r} has no radius to change")
        return replace(
            self,
            radius=radius + _CLEARANCE,
            footprint=(radius, radius),
            body=partial(self.body, radius=radius),
        )


def _geom(
    name: str, kind: str, size: tuple[float, ...], pos: tuple[float, ...], rgba: str, **extra: str
) -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in extra.items())
    size_s = " ".join(f"{v:.4g}" for v in size)
    pos_s = " ".join(f"{v:.4g}" for v in pos)
    return f'<geom name="{name}" type="{kind}" size="{size_s}" pos="{pos_s}" rgba="{rgba}" class="world" {attrs}/>'


def _visual(name: str, kind: str, size: tuple[float, ...], pos: tuple[float, ...], rgba: str) -> str:
    return _geom(name, kind, size, pos, rgba, contype="0", conaffinity="0", mass="0")


def _shade(rgba: str, factor: float) -> str:
    r, g, b, a = (float(v) for v in rgba.split())
    return f"{min(1.0, r * factor):.3g} {min(1.0, g * factor):.3g} {min(1.0, b * factor):.3g} {a:.3g}"


_GRIP = {"friction": "1.2 0.02 0.002", "condim": "4"}


def _cube(name: str, rgba: str) -> str:
    return _geom(name, "box", (0.0225, 0.0225, 0.0225), (0, 0, 0), rgba, mass="0.09", **_GRIP)


def _block(name: str, rgba: str) -> str:
    return _geom(name, "box", (0.035, 0.021, 0.025), (0, 0, 0), rgba, mass="0.1", **_GRIP)


def _round_graspable(name: str, rgba: str, radius: float, half_height: float) -> list[str]:
    # Round to the eye, square to the fingers: flat pads squeezing a cylinder touch it along one line
    # and let it roll out of the grasp, so the collision shape is an inscribed box (invisible).
    side = radius * 0.85
    return [
        _geom(name, "box", (side, side, half_height), (0, 0, 0), "0 0 0 0", mass="0.08", **_GRIP),
        _visual(f"{name}_shell", "cylinder", (radius, half_height), (0, 0, 0), rgba),
    ]


def _bowl(name: str, rgba: str) -> str:
    # A solid puck with a dark inner disc reads as a bowl from above.
    return "\n".join(
        [
            *_round_graspable(name, rgba, 0.03, 0.02),
            _visual(f"{name}_inside", "cylinder", (0.022, 0.001), (0, 0, 0.0205), _shade(rgba, 0.45)),
        ]
    )


def _mug(name: str, rgba: str) -> str:
    return "\n".join(
        [
            *_round_graspable(name, rgba, 0.026, 0.035),
            _geom(f"{name}_handle", "box", (0.011, 0.005, 0.018), (0.036, 0, 0.004), rgba, mass="0.01"),
            _visual(f"{name}_inside", "cylinder", (0.02, 0.001), (0, 0, 0.0345), _shade(rgba, 0.4)),
        ]
    )


def _can(name: str, rgba: str) -> str:
    return "\n".join(
        [
            *_round_graspable(name, rgba, 0.024, 0.04),
            _visual(f"{name}_lid", "cylinder", (0.02, 0.001), (0, 0, 0.0405), "0.75 0.75 0.78 1"),
        ]
    )


_CLEARANCE = 0.002  # m: a round support's layout radius beyond its footprint


def _round_top(
    name: str, rgba: str, radius: float, half_height: float, mark: tuple[str, float, float]
) -> str:
    # A cylinder standing on the table with a disc of another shade on top, which shows its centre.
    # mark: (geom name suffix, disc radius as a share of `radius`, shade factor of the disc colour).
    suffix, share, shade = mark
    return "\n".join(
        [
            _geom(
                name, "cylinder", (radius, half_height), (0, 0, half_height), rgba, friction="1 0.01 0.001"
            ),
            _visual(
                f"{name}_{suffix}",
                "cylinder",
                (share * radius, 0.0005),
                (0, 0, 2 * half_height),
                _shade(rgba, shade),
            ),
        ]
    )


def _plate(name: str, rgba: str, radius: float) -> str:
    return _round_top(name, rgba, radius, 0.006, ("centre", 0.6, 1.6))


def _peg(name: str, rgba: str, radius: float) -> str:
    return _round_top(name, rgba, radius, 0.02, ("top", 0.5625, 0.5))


def _round_support(name: str, body: Callable[..., str], radius: float, top: float) -> ObjectType:
    """A round support with footprint radius `radius` (m) and its top `top` m above the table."""
    return ObjectType(
        name,
        Role.SUPPORT,
        radius + _CLEARANCE,
        partial(body, radius=radius),
        top=top,
        footprint=(radius, radius),
        round_footprint=True,
    )


def _box(name: str, rgba: str) -> str:
    return _geom(name, "box", (0.045, 0.045, 0.03), (0, 0, 0.03), rgba)


def _basket(name: str, rgba: str) -> str:
    wall = _shade(rgba, 0.8)
    return "\n".join(
        [
            _geom(name, "box", (0.08, 0.08, 0.004), (0, 0, 0.004), rgba),
            _geom(f"{name}_wall_front", "box", (0.005, 0.08, 0.024), (-0.075, 0, 0.03), wall),
            _geom(f"{name}_wall_back", "box", (0.005, 0.08, 0.024), (0.075, 0, 0.03), wall),
            _geom(f"{name}_wall_left", "box", (0.07, 0.005, 0.024), (0, 0.075, 0.03), wall),
            _geom(f"{name}_wall_right", "box", (0.07, 0.005, 0.024), (0, -0.075, 0.03), wall),
        ]
    )


DRAWER_TRAVEL = 0.12
# Drawer interior in the drawer frame (closed drawer frame = cabinet frame): x range, y half width.
DRAWER_INNER_X = (-0.074, 0.056)
DRAWER_HANDLE = (-0.111, 0.0, 0.05)  # handle centre in the drawer frame
CABINET_TOP = 0.09


def _drawer_cabinet(name: str, rgba: str) -> str:
    # Front faces -x (towards the robot); the drawer slides out along -x. Parent-child contacts are
    # filtered by MuJoCo, so the drawer may overlap its shell; the joint range bounds its travel.
    front = _shade(rgba, 1.3)
    return "\n".join(
        [
            _geom(f"{name}_top", "box", (0.08, 0.1, 0.006), (0, 0, 0.084), rgba),
            _geom(f"{name}_side_left", "box", (0.08, 0.006, 0.039), (0, 0.094, 0.039), rgba),
            _geom(f"{name}_side_right", "box", (0.08, 0.006, 0.039), (0, -0.094, 0.039), rgba),
            _geom(f"{name}_back", "box", (0.006, 0.088, 0.039), (0.074, 0, 0.039), rgba),
            f'<body name="{name}_drawer">',
            f'  <joint name="{name}_joint" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL}" damping="8"'
            ' frictionloss="0.5" armature="0.05"/>',
            _geom(name, "box", (0.066, 0.084, 0.004), (-0.004, 0, 0.008), front, mass="0.2"),
            _geom(f"{name}_front", "box", (0.006, 0.086, 0.036), (-0.08, 0, 0.04), front, mass="0.1"),
            _geom(f"{name}_wall_left", "box", (0.066, 0.004, 0.02), (-0.004, 0.08, 0.03), front, mass="0.03"),
            _geom(
                f"{name}_wall_right", "box", (0.066, 0.004, 0.02), (-0.004, -0.08, 0.03), front, mass="0.03"
            ),
            _geom(f"{name}_wall_back", "box", (0.004, 0.08, 0.02), (0.06, 0, 0.03), front, mass="0.03"),
            _geom(
                f"{name}_handle",
                "box",
                (0.025, 0.008, 0.008),
                DRAWER_HANDLE,
                "0.2 0.2 0.22 1",
                mass="0.02",
                friction="2 0.02 0.002",
                condim="4",
            ),
            "</body>",
        ]
    )


DOOR_TRAVEL = 1.5  # rad
# Door frame = hinge frame: the hinge is the cabinet's front-right corner; the closed door runs along +y.
DOOR_HINGE = (-0.05, -0.07)
DOOR_HANDLE = (-0.03, 0.12, 0.055)  # handle centre in the hinge frame


def _door_cabinet(name: str, rgba: str) -> str:
    # Front faces -x; the door turns about the vertical hinge at the front-right corner, its free edge
    # swinging towards the robot. A horizontal handle bar sticks out of the door near its free edge.
    door = _shade(rgba, 1.3)
    hx, hy = DOOR_HINGE
    return "\n".join(
        [
            _geom(f"{name}_top", "box", (0.05, 0.07, 0.005), (0, 0, 0.095), rgba),
            _geom(f"{name}_side_left", "box", (0.05, 0.005, 0.045), (0, 0.065, 0.045), rgba),
            _geom(f"{name}_side_right", "box", (0.05, 0.005, 0.045), (0, -0.065, 0.045), rgba),
            _geom(f"{name}_back", "box", (0.005, 0.06, 0.045), (0.045, 0, 0.045), rgba),
            f'<body name="{name}_door" pos="{hx} {hy} 0">',
            f'  <joint name="{name}_joint" type="hinge" axis="0 0 1" range="0 {DOOR_TRAVEL}" damping="0.3"'
            ' frictionloss="0.05" armature="0.01"/>',
            _geom(name, "box", (0.005, 0.07, 0.045), (-0.006, 0.07, 0.05), door, mass="0.15"),
            _geom(
                f"{name}_handle",
                "box",
                (0.02, 0.008, 0.008),
                (DOOR_HANDLE[0] + 0.005, DOOR_HANDLE[1], DOOR_HANDLE[2]),
                "0.2 0.2 0.22 1",
                mass="0.02",
                friction="2 0.02 0.002",
                condim="4",
            ),
            "</body>",
        ]
    )


BUTTON_TRAVEL = 0.012
BUTTON_CAP_TOP = 0.04


def _button(name: str, rgba: str) -> str:
    # The cap slides down and stays down (friction loss, no spring): a latched push button.
    return "\n".join(
        [
            _geom(f"{name}_base", "cylinder", (0.035, 0.01), (0, 0, 0.01), "0.3 0.3 0.32 1"),
            # Gravity compensation: friction loss alone lets a loaded cap creep down over a few seconds.
            f'<body name="{name}_cap" pos="0 0 0.02" gravcomp="1">',
            f'  <joint name="{name}_joint" type="slide" axis="0 0 -1" range="0 {BUTTON_TRAVEL}" damping="3"'
            ' frictionloss="1.5"/>',
            _geom(name, "cylinder", (0.022, 0.01), (0, 0, 0.01), rgba, mass="0.02"),
            "</body>",
        ]
    )


SWITCH_TRAVEL = 0.06
SWITCH_KNOB_HALF = (0.012, 0.012, 0.02)
SWITCH_BASE_TOP = 0.016


def _switch(name: str, rgba: str) -> str:
    # Knob slides along +y from off (q = 0, at -0.03) to on (q = travel, at +0.03).
    return "\n".join(
        [
            _geom(f"{name}_base", "box", (0.02, 0.05, 0.008), (0, 0, 0.008), "0.3 0.3 0.32 1"),
            _visual(f"{name}_on_mark", "box", (0.021, 0.008, 0.0005), (0, 0.04, 0.016), "0.2 0.9 0.2 1"),
            f'<body name="{name}_knob" pos="0 -0.03 {SWITCH_BASE_TOP + SWITCH_KNOB_HALF[2]}">',
            f'  <joint name="{name}_joint" type="slide" axis="0 1 0" range="0 {SWITCH_TRAVEL}" damping="3"'
            ' frictionloss="1.5"/>',
            _geom(name, "box", SWITCH_KNOB_HALF, (0, 0, 0), rgba, mass="0.02"),
            "</body>",
        ]
    )


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType("cube", Role.GRASPABLE, 0.032, _cube, half_height=0.0225, grasp_period=np.pi / 2),
        ObjectType("block", Role.GRASPABLE, 0.041, _block, half_height=0.025, grasp_period=np.pi),
        ObjectType("bowl", Role.GRASPABLE, 0.032, _bowl, half_height=0.02, grasp_period=np.pi / 2),
        ObjectType("mug", Role.GRASPABLE, 0.048, _mug, half_height=0.035, grasp_period=np.pi),
        ObjectType("can", Role.GRASPABLE, 0.026, _can, half_height=0.04, grasp_period=np.pi / 2),
        _round_support("plate", _plate, radius=0.06, top=0.012),
        _round_support("peg", _peg, radius=0.032, top=0.04),
        ObjectType("box", Role.SUPPORT, 0.064, _box, top=0.06, footprint=(0.045, 0.045)),
        ObjectType(
            "basket", Role.CONTAINER, 0.113, _basket, footprint=(0.07, 0.07), floor=0.008, wall_top=0.054
        ),
        ObjectType(
            "drawer_cabinet",
            Role.DRAWER,
            0.13,
            _drawer_cabinet,
            footprint=((DRAWER_INNER_X[1] - DRAWER_INNER_X[0]) / 2, 0.076),
            floor=0.012,
            wall_top=0.05,
            travel=DRAWER_TRAVEL,
        ),
        ObjectType("door_cabinet", Role.DOOR, 0.086, _door_cabinet, travel=DOOR_TRAVEL),
        ObjectType("button", Role.BUTTON, 0.036, _button, travel=BUTTON_TRAVEL),
        ObjectType("switch", Role.SWITCH, 0.054, _switch, travel=SWITCH_TRAVEL),
    )
}
