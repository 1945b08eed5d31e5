"""Scripted experts for LIBERO's pick-and-place tasks: "pick X and place it on Y" (libero_spatial's
black bowls on the plate) and "pick X and place it in Y" (libero_object's groceries in the basket).

The expert reads the poses and collision geometry of the objects from the simulator, never the
cameras, and acts as a policy would: a 7-d action of LIBERO's OSC delta end-effector controller at
20 Hz (Δposition and Δrotation scaled to [-1, 1]: 5 cm and 0.5 rad at full scale; gripper −1 open,
+1 closed). It keeps the gripper pointing down, turned about the vertical so the fingers close
across the object's narrower side, and goes through fixed phases: above the grasp point, down,
close, lift, carry above the target, lower, open, retreat. A bowl is grasped by its rim (the
fingers straddle the wall on the side farther from other objects); anything else at its centre,
a little below its top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from robosuite.utils import transform_utils as tf

from robopolicy_libero.libero_env import LiberoEnv

POS_SCALE, ROT_SCALE = 0.05, 0.5  # the controller's full-scale Δposition (m) and Δrotation (rad)
MAX_SPEED = 0.6  # the largest position action: 3 cm per step
OPEN, CLOSED = -1.0, 1.0
DOWN = np.array(
    [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
)  # gripper pointing down, fingers along y
HOVER = 0.08  # above the grasp point before descending (m)
LIFT = 0.06  # the least lift of a grasped object (m)
CLEARANCE = 0.06  # of the carried object's bottom over the target's top while carrying (m)
WIDEST_GRASP = 0.075  # wider than this across the fingers does not fit


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the world frame."""

    low: np.ndarray
    high: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return (self.low + self.high) / 2

    @property
    def size(self) -> np.ndarray:
        return self.high - self.low


def collision_box(env: LiberoEnv, body: int, frame: np.ndarray | None = None) -> Box:
    """The box around a body's collision geoms (its whole subtree), in the world frame or, with
    `frame` (a rotation), along that frame's axes (expressed in it)."""
    model, data = env.sim.model._model, env.sim.data._data
    rotation = np.eye(3) if frame is None else frame
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for g in range(model.ngeom):
        if model.body_rootid[model.geom_bodyid[g]] != body or not (
            model.geom_contype[g] or model.geom_conaffinity[g]
        ):
            continue
        geom = data.geom_xmat[g].reshape(3, 3)
        center = rotation.T @ (data.geom_xpos[g] + geom @ model.geom_aabb[g, :3])
        half = np.abs(rotation.T @ geom) @ model.geom_aabb[g, 3:]
        low, high = np.minimum(low, center - half), np.maximum(high, center + half)
    return Box(low, high)


def goal_of(env: LiberoEnv) -> tuple[str, str, str]:
    """(relation, object, target object) of a pick-and-place goal: ('on'|'in', X, Y)."""
    goal = env.inner.parsed_problem["goal_state"]
    if len(goal) != 1 or goal[0][0].lower() not in ("on", "in"):
        raise ValueError(f"{env.task.name}: not a pick-and-place goal: {goal}")
    relation, obj, target = goal[0][0].lower(), goal[0][1], goal[0][2]
    if target not in env.inner.obj_body_id:  # a region of an object, e.g. basket_1_contain_region
        target = next(name for name in env.inner.obj_body_id if target.startswith(name + "_"))
    return relation, obj, target


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class PickPlaceExpert:
    """The expert of one episode of a pick-and-place task; `act(obs)` gives each step's action."""

    def __init__(self, env: LiberoEnv) -> None:
        self.env = env
        self.relation, self.obj, self.target = goal_of(env)
        self.obj_body = env.inner.obj_body_id[self.obj]
        self.target_body = env.inner.obj_body_id[self.target]
        self.phase = "approach"
        self.phase_steps = 0
        self.grasp, self.orientation = self._plan_grasp()
        self.held_offset = np.zeros(3)  # object centre − gripper, measured once lifted

    def _plan_grasp(self) -> tuple[np.ndarray, np.ndarray]:
        """The grasp point (gripper site position) and the gripper's orientation."""
        box = collision_box(self.env, self.obj_body)
        if "bowl" in self.obj:
            wall = box.size[1] / 2 - 0.008
            others = [
                self.env.sim.data.body_xpos[b]
                for name, b in self.env.inner.obj_body_id.items()
                if name != self.obj
            ]
            sides = [box.center + np.array([0.0, sign * wall, 0.0]) for sign in (1.0, -1.0)]
            side = max(sides, key=lambda p: min(np.linalg.norm((p - o)[:2]) for o in others))
            return np.array([side[0], side[1], box.high[2] - 0.02]), DOWN
        # Fingers across the narrower horizontal side of the object's own frame.
        frame = self.env.sim.data.body_xmat[self.obj_body].reshape(3, 3)
        up = int(np.argmax(np.abs(frame[2])))
        local = collision_box(self.env, self.obj_body, frame).size
        horizontal = [a for a in range(3) if a != up]
        narrow = min(horizontal, key=lambda a: local[a])
        across = frame[:, narrow]
        angle = np.arctan2(across[1], across[0]) - np.pi / 2  # turn the fingers' y axis onto `across`
        angle = (angle + np.pi / 2) % np.pi - np.pi / 2
        height = box.size[2]
        z = max(box.high[2] - min(0.03, height / 2), box.low[2] + 0.012)
        return np.array([box.center[0], box.center[1], z]), _yaw(angle) @ DOWN

    def _move(self, obs: dict, target: np.ndarray, gripper: float) -> tuple[np.ndarray, float]:
        position = obs["robot0_eef_pos"]
        delta = np.clip((target - position) / POS_SCALE, -MAX_SPEED, MAX_SPEED)
        current = tf.quat2mat(obs["robot0_eef_quat"])
        rotation = tf.quat2axisangle(tf.mat2quat(self.orientation @ current.T))
        turn = np.clip(rotation / ROT_SCALE, -1.0, 1.0)
        return np.concatenate([delta, turn, [gripper]]), float(np.linalg.norm(target - position))

    def act(self, obs: dict) -> np.ndarray:
        self.phase_steps += 1
        eef = obs["robot0_eef_pos"]
        target_box = collision_box(self.env, self.target_body)
        obj_box = collision_box(self.env, self.obj_body)
        # Carry the object's bottom CLEARANCE over the target's top, and never lower than lifted off.
        carry_z = max(target_box.high[2] + CLEARANCE + (eef[2] - obj_box.low[2]), self.grasp[2] + LIFT)
        if self.phase == "approach":
            action, error = self._move(obs, self.grasp + np.array([0.0, 0.0, HOVER]), OPEN)
            self._next(error < 0.012 or self.phase_steps > 60, "descend")
        elif self.phase == "descend":
            action, error = self._move(obs, self.grasp, OPEN)
            self._next(error < 0.006 or self.phase_steps > 40, "close")
        elif self.phase == "close":
            action, _ = self._move(obs, self.grasp, CLOSED)
            self._next(self.phase_steps >= 8, "lift")
        elif self.phase == "lift":
            action, error = self._move(obs, np.array([eef[0], eef[1], carry_z]), CLOSED)
            self.held_offset = obj_box.center - eef
            self._next(abs(eef[2] - carry_z) < 0.015, "carry")
        elif self.phase == "carry":
            goal = target_box.center - self.held_offset
            action, error = self._move(obs, np.array([goal[0], goal[1], carry_z]), CLOSED)
            self._next(error < 0.015 or self.phase_steps > 60, "lower")
        elif self.phase == "lower":
            goal = target_box.center - self.held_offset
            place_z = target_box.high[2] + 0.01 + (eef[2] - obj_box.low[2])
            if self.relation == "on":
                place_z = target_box.high[2] + 0.005 + (eef[2] - obj_box.low[2])
            action, error = self._move(obs, np.array([goal[0], goal[1], place_z]), CLOSED)
            self._next(error < 0.01 or self.phase_steps > 30, "release")
        elif self.phase == "release":
            action, _ = self._move(obs, eef, OPEN)
            self._next(self.phase_steps >= 6, "retreat")
        else:
            action, _ = self._move(obs, np.array([eef[0], eef[1], carry_z + 0.05]), OPEN)
        return action

    def _next(self, done: bool, phase: str) -> None:
        if done:
            self.phase, self.phase_steps = phase, 0
