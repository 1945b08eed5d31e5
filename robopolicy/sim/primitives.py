"""Reusable scripted motion primitives, using privileged simulator state.

Each primitive is a generator of normalised 7-d actions ([dx, dy, dz, drx, dry, drz, gripper]); it
returns when its motion is done. Motions are proportional controllers on a target position of the grip
site (or of a held object), saturated as a whole vector so paths stay straight, with the gripper kept
pointing down at a target yaw. Every wait has a step budget, so a primitive never stalls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from robopolicy.sim.env import TabletopEnv
from robopolicy.tasks.object_library import (
    BUTTON_CAP_TOP,
    BUTTON_TRAVEL,
    DOOR_HANDLE,
    DOOR_TRAVEL,
    DRAWER_HANDLE,
    DRAWER_INNER_X,
    SWITCH_BASE_TOP,
    SWITCH_KNOB_HALF,
    SWITCH_TRAVEL,
    ObjectType,
    Role,
)
from robopolicy.tasks.rotations import matrix_to_rotvec, quat_to_yaw, rot_z, wrap_angle

Actions = Iterator[np.ndarray]
_DOWN = np.diag([1.0, -1.0, -1.0])  # grip-site orientation of the home posture (pointing down)
_PAD_TIP = 0.009  # m: the finger tips reach this far below the grip site
_PAD_HALF_THICK = 0.014  # m: half the y extent of the two closed pads together


@dataclass(frozen=True)
class PrimitiveConfig:
    """Gains and tolerances (m, rad, control steps) of the primitives.

    safe_height: height (m) of the grip site's transit moves; held objects travel with their bottom at
        least this high, above every fixture of the library (cabinet top 0.09 m).
    max_action: cap on |a|; 0.4 moves at 2 cm per 20 Hz step.
    """

    safe_height: float = 0.17
    hover: float = 0.06
    pos_gain: float = 0.7
    rot_gain: float = 0.6
    pos_tol: float = 0.008
    yaw_tol: float = 0.06
    grasp_steps: int = 6
    release_steps: int = 4
    budget: int = 60
    max_action: float = 0.4

    def __post_init__(self) -> None:
        for name in ("safe_height", "hover", "pos_tol", "yaw_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PrimitiveConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("pos_gain", "rot_gain", "max_action"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"PrimitiveConfig.{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("grasp_steps", "release_steps", "budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"PrimitiveConfig.{name} must be >= 1, got {getattr(self, name)}")


def _saturate(a: np.ndarray, limit: float) -> np.ndarray:
    peak = float(np.max(np.abs(a)))
    return a * (limit / peak) if peak > limit else a


class Motion:
    """Privileged reads of the scene and the action law shared by all primitives."""

    def __init__(self, env: TabletopEnv, config: PrimitiveConfig) -> None:
        self.env = env
        self.task = env.scene_task
        self.config = config
        self.yaw = 0.0  # current target yaw of the gripper (rad)
        self.grip_cmd = -1.0  # current gripper command
        self.held: str | None = None
        self._pos_scale = env.config.controller.pos_scale
        self._rot_scale = env.config.controller.rot_scale

    # ----- reads -----
    def grip(self) -> np.ndarray:
        return self.env.data.site_xpos[self.env.index.grip_site].copy()

    def grip_rot(self) -> np.ndarray:
        return self.env.data.site_xmat[self.env.index.grip_site].reshape(3, 3).copy()

    def pos(self, name: str) -> np.ndarray:
        return self.env.data.xpos[self.task.handles[name].body].copy()

    def part_pos(self, name: str) -> np.ndarray:
        return self.env.data.xpos[self.task.handles[name].part_body].copy()

    def obj_yaw(self, name: str) -> float:
        return quat_to_yaw(self.env.data.xquat[self.task.handles[name].body])

    def kind(self, name: str) -> ObjectType:
        return self.task.handles[name].spec.kind

    # ----- action -----
    def action(self, error: np.ndarray) -> np.ndarray:
        cfg = self.config
        translation = _saturate(cfg.pos_gain * error / self._pos_scale, cfg.max_action)
        target = rot_z(self.yaw) @ _DOWN
        rot_err = matrix_to_rotvec(target @ self.grip_rot().T)
        rotation = _saturate(cfg.rot_gain * rot_err / self._rot_scale, cfg.max_action)
        return np.concatenate([translation, rotation, [self.grip_cmd]]).astype(np.float32)

    def yaw_error(self) -> float:
        rot = self.grip_rot()
        return abs(wrap_angle(float(np.arctan2(rot[1, 0], rot[0, 0])) - self.yaw))


# ----- building blocks -----
def move_to(
    m: Motion,
    target: Callable[[], np.ndarray],
    tol: float | None = None,
    budget: int | None = None,
    point: Callable[[], np.ndarray] | None = None,
    axes: slice = slice(0, 3),
    lost: Callable[[], bool] | None = None,
) -> Actions:
    """Drive `point` (default: the grip site) to `target` until within `tol` on `axes`.

    Stops early when `lost()` turns true (e.g. a carried object slipped out of the hand).
    """
    tol = m.config.pos_tol if tol is None else tol
    point = point or m.grip
    for _ in range(budget or m.config.budget):
        if lost is not None and lost():
            return
        error = target() - point()
        if np.linalg.norm(error[axes]) < tol and m.yaw_error() < m.config.yaw_tol:
            return
        yield m.action(error)


def hold(m: Motion, steps: int) -> Actions:
    for _ in range(steps):
        yield m.action(np.zeros(3))


def set_gripper(m: Motion, command: float, steps: int) -> Actions:
    m.grip_cmd = command
    yield from hold(m, steps)


def transit(m: Motion, target: Callable[[], np.ndarray], height: float | None = None) -> Actions:
    """Rise to the safe height, travel above `target` (3,), then descend onto it."""
    z = m.config.safe_height if height is None else height
    if m.grip()[2] < z - 0.02:
        start = m.grip()
        yield from move_to(m, lambda: np.array([start[0], start[1], z]), tol=0.02)
    yield from move_to(m, lambda: np.array([*target()[:2], z]), tol=1.5 * m.config.pos_tol, axes=slice(0, 2))
    yield from move_to(m, target)


def retreat(m: Motion, height: float = 0.08) -> Actions:
    start = m.grip()
    yield from move_to(m, lambda: start + np.array([0.0, 0.0, height]), tol=0.015, budget=20)


# ----- primitives -----
def grasp_yaw(m: Motion, name: str) -> float:
    """Gripper yaw that closes the fingers across the object's graspable width."""
    period = m.kind(name).grasp_period
    if period == 0.0:
        return 0.0
    return wrap_angle(m.obj_yaw(name), period)


def pick(m: Motion, name: str) -> Actions:
    """Grasp graspable object `name` from above and lift it to the safe height."""
    kind = m.kind(name)
    m.yaw = grasp_yaw(m, name)
    yield from set_gripper(m, -1.0, 1)

    def grasp_point() -> np.ndarray:
        p = m.pos(name)
        # Low objects: stop with the fingertips just above the table instead of pushing into it.
        p[2] = max(p[2], _PAD_TIP - 0.006)
        return p

    yield from transit(m, lambda: grasp_point() + np.array([0.0, 0.0, m.config.hover]))
    yield from move_to(m, grasp_point)
    yield from set_gripper(m, 1.0, m.config.grasp_steps)
    m.held = name
    lift = m.config.safe_height - 0.02 + kind.half_height
    # Straight up first, so the object does not drag across the table or hit its neighbours.
    yield from move_to(
        m, lambda: np.array([*m.pos(name)[:2], lift]), tol=0.02, point=lambda: m.pos(name), axes=slice(2, 3)
    )


def place_at(m: Motion, name: str, target: Callable[[], np.ndarray]) -> Actions:
    """Carry the held object so its centre reaches `target` (3,), release it, and back off upwards."""
    carry = m.config.safe_height + m.kind(name).half_height

    def obj() -> np.ndarray:
        return m.pos(name)

    def above() -> np.ndarray:
        return np.array([*target()[:2], max(carry, target()[2] + 0.04)])

    def dropped() -> bool:
        return float(np.linalg.norm(obj() - m.grip())) > 0.06

    yield from move_to(m, above, tol=m.config.pos_tol, point=obj, axes=slice(0, 2), budget=80, lost=dropped)
    yield from move_to(m, target, point=obj, lost=dropped)
    yield from set_gripper(m, -1.0, m.config.release_steps)
    m.held = None
    yield from retreat(m)


def place_on(m: Motion, name: str, support: str) -> Actions:
    kind = m.kind(support)

    def target() -> np.ndarray:
        p = m.pos(support)
        return np.array([p[0], p[1], p[2] + kind.top + m.kind(name).half_height + 0.012])

    yield from place_at(m, name, target)


def place_in(m: Motion, name: str, container: str) -> Actions:
    kind = m.kind(container)

    def target() -> np.ndarray:
        if kind.role is Role.DRAWER:
            # Over the part of the open drawer that sticks out of the cabinet.
            base = m.part_pos(container)
            x = base[0] + (DRAWER_INNER_X[0] + 0.025) + 0.01
            return np.array([x, base[1], base[2] + kind.floor + m.kind(name).half_height + 0.015])
        p = m.pos(container)
        return np.array([p[0], p[1], p[2] + kind.floor + m.kind(name).half_height + 0.02])

    yield from place_at(m, name, target)


def place_back(m: Motion, name: str) -> Actions:
    start = m.task.start_xy(name)
    yield from place_at(m, name, lambda: np.array([start[0], start[1], m.kind(name).half_height + 0.008]))


def slide_drawer(m: Motion, name: str, fraction: float) -> Actions:
    """Grasp the drawer handle and pull (or push) it to `fraction` of its travel."""
    m.yaw = 0.0
    travel = m.kind(name).travel

    def handle() -> np.ndarray:
        return m.part_pos(name) + np.array(DRAWER_HANDLE)

    yield from set_gripper(m, -1.0, 1)
    yield from transit(m, lambda: handle() + np.array([0.0, 0.0, m.config.hover]))
    yield from move_to(m, handle)
    yield from set_gripper(m, 1.0, m.config.grasp_steps)
    closed_x = m.pos(name)[0] + DRAWER_HANDLE[0]
    # Aim 1.5 cm past the end: the hand lags the handle a little, and the joint limit stops the drawer.
    goal_x = closed_x - fraction * travel + (0.015 if fraction < 0.5 else -0.015)
    goal = np.array([goal_x, handle()[1], handle()[2]])
    yield from move_to(m, lambda: goal, tol=0.006, budget=40)
    yield from set_gripper(m, -1.0, m.config.release_steps)
    yield from retreat(m)


def swing_door(m: Motion, name: str, fraction: float) -> Actions:
    """Grasp the door handle and carry it along the door's arc to `fraction` of its travel.

    The hand chases a point a little ahead on the arc and turns with the door, so the grasp follows
    the handle instead of fighting the hinge.
    """
    h = m.task.handles[name]
    hinge = m.part_pos(name)
    cab_yaw = m.obj_yaw(name)

    def angle() -> float:
        return float(m.env.data.qpos[h.joint_qpos])

    def handle_at(phi: float) -> np.ndarray:
        local = rot_z(cab_yaw + phi) @ np.array(DOOR_HANDLE)
        return hinge + local

    m.yaw = wrap_angle(cab_yaw + angle(), np.pi)
    yield from set_gripper(m, -1.0, 1)
    yield from transit(m, lambda: handle_at(angle()) + np.array([0.0, 0.0, m.config.hover]))
    yield from move_to(m, lambda: handle_at(angle()))
    yield from set_gripper(m, 1.0, m.config.grasp_steps)
    # Stop short of the hinge's limits: near them the hand can no longer follow the handle's arc.
    goal = float(np.clip(fraction, 0.0, 0.75)) * DOOR_TRAVEL
    history: list[float] = []
    for _ in range(m.config.budget):
        phi = angle()
        history.append(phi)
        stalled = len(history) > 5 and abs(history[-1] - history[-6]) < 0.01
        if abs(phi - goal) < 0.06 or stalled:
            break
        ahead = phi + float(np.clip(goal - phi, -0.3, 0.3))
        m.yaw = cab_yaw + ahead
        yield m.action(handle_at(ahead) - m.grip())
    yield from set_gripper(m, -1.0, m.config.release_steps)
    yield from retreat(m)


def press(m: Motion, name: str) -> Actions:
    """Push a button down with the closed fingers until it latches."""
    m.yaw = 0.0
    base = m.pos(name)
    top = np.array([base[0], base[1], base[2] + BUTTON_CAP_TOP + _PAD_TIP])
    yield from set_gripper(m, 1.0, 1)
    yield from transit(m, lambda: top + np.array([0.0, 0.0, m.config.hover]))
    pressed = top - np.array([0.0, 0.0, BUTTON_TRAVEL + 0.006])
    yield from move_to(m, lambda: pressed, tol=0.004, budget=25)
    yield from retreat(m)


def slide_switch(m: Motion, name: str, on: bool) -> Actions:
    """Push a slider switch's knob to its on (+y) or off (-y) end with the side of the closed fingers."""
    m.yaw = 0.0
    sign = 1.0 if on else -1.0
    base = m.pos(name)
    z = base[2] + SWITCH_BASE_TOP + _PAD_TIP + 0.01
    offset = SWITCH_KNOB_HALF[1] + _PAD_HALF_THICK + 0.012

    def knob() -> np.ndarray:
        return m.part_pos(name)

    start = np.array([base[0], knob()[1] - sign * offset, z])
    yield from set_gripper(m, 1.0, 1)
    yield from transit(m, lambda: start + np.array([0.0, 0.0, m.config.hover]))
    yield from move_to(m, lambda: start)
    end_y = base[1] + sign * (SWITCH_TRAVEL / 2 + 0.004) - sign * (SWITCH_KNOB_HALF[1] + _PAD_HALF_THICK)
    yield from move_to(m, lambda: np.array([base[0], end_y, z]), tol=0.004, budget=30)
    yield from retreat(m)


def lift_and_hold(m: Motion, name: str) -> Actions:
    yield from pick(m, name)
    yield from hold(m, 10)
