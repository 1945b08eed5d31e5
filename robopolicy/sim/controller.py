"""LIBERO-style delta end-effector actions -> joint position targets, by damped least-squares IK.

Action (7,), float, normalised to [-1, 1]:
  a[0:3]  end-effector translation, scaled by `pos_scale` (0.05 m per control step, LIBERO's OSC limit)
  a[3:6]  end-effector rotation as axis-angle, scaled by `rot_scale` (0.5 rad per control step)
  a[6]    gripper: -1 fully open, +1 fully closed, linear in between
Deltas are in the world (= robot base) frame and apply to the grip site's goal pose, which integrates
the deltas (re-anchored on the measured pose when the hand is blocked). The commanded pose change is
turned into a joint change with a few damped least-squares (Gauss-Newton) steps, plus a null-space pull toward the home
posture that keeps the redundant elbow from drifting over long episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robopolicy.sim import panda
from robopolicy.tasks.rotations import matrix_to_rotvec, rotvec_to_matrix

ACTION_DIM = 7


@dataclass(frozen=True)
class ControllerConfig:
    """pos_scale: m per step at |a| = 1. rot_scale: rad per step at |a| = 1.

    damping: DLS damping λ (in the units of the task error); trades accuracy for smoothness near
        singularities.
    nullspace_gain: fraction of the home-posture error removed per step, inside the Jacobian's null space.
    limit_margin: joint targets stay this far (rad) inside the joint limits.
    ik_iterations: Gauss-Newton iterations per control step.
    max_lead_pos, max_lead_rot: how far (m, rad) the accumulated goal pose may run ahead of the measured
        grip-site pose before it is re-anchored on the measured one.
    """

    pos_scale: float = 0.05
    rot_scale: float = 0.5
    damping: float = 0.05
    nullspace_gain: float = 0.1
    limit_margin: float = 0.02
    ik_iterations: int = 3
    max_lead_pos: float = 0.06
    max_lead_rot: float = 0.6
    home_qpos: tuple[float, ...] = panda.HOME_QPOS

    def __post_init__(self) -> None:
        for name in ("pos_scale", "rot_scale", "damping"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ControllerConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.nullspace_gain <= 1.0:
            raise ValueError(f"ControllerConfig.nullspace_gain must be in [0, 1], got {self.nullspace_gain}")
        if not 0.0 <= self.limit_margin < 0.1:
            raise ValueError(
                f"ControllerConfig.limit_margin must be in [0, 0.1) rad, got {self.limit_margin}"
            )
        if self.ik_iterations < 1:
            raise ValueError(f"ControllerConfig.ik_iterations must be >= 1, got {self.ik_iterations}")
        if len(self.home_qpos) != 7:
            raise ValueError(f"ControllerConfig.home_qpos must have 7 entries, got {len(self.home_qpos)}")


class DeltaEEController:
    """Writes actuator targets (`data.ctrl`) for a 7-d delta end-effector action."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        index: panda.RobotIndex,
        config: ControllerConfig,
    ) -> None:
        self._model = model
        self._data = data
        self._index = index
        self._config = config
        limits = np.asarray(panda.JOINT_LIMITS)
        self._q_lo = limits[:, 0] + config.limit_margin
        self._q_hi = limits[:, 1] - config.limit_margin
        self._home = np.asarray(config.home_qpos, dtype=np.float64)
        # Scratch buffers reused every step: mj_jacSite fills full-width (3, nv) Jacobians.
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._scratch = mujoco.MjData(model)
        self._goal: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the accumulated goal pose; the next action is relative to the measured pose."""
        self._goal = None

    @property
    def config(self) -> ControllerConfig:
        return self._config

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """(7,) joint position targets (rad) for a (7,) action, from the current kinematics in `data`."""
        cfg = self._config
        a = np.clip(np.asarray(action, dtype=np.float64)[:6], -1.0, 1.0)
        site = self._index.grip_site
        pos = self._data.site_xpos[site]
        rot = self._data.site_xmat[site].reshape(3, 3)
        # Deltas accumulate on the previous goal, so servo lag does not eat into commanded motion; when
        # the hand falls far behind (blocked by contact), re-anchor on the measured pose to avoid wind-up.
        if self._goal is not None:
            lead_pos = float(np.linalg.norm(self._goal[0] - pos))
            lead_rot = float(np.linalg.norm(matrix_to_rotvec(self._goal[1] @ rot.T)))
            if lead_pos <= cfg.max_lead_pos and lead_rot <= cfg.max_lead_rot:
                pos, rot = self._goal
        goal_pos = pos + a[:3] * cfg.pos_scale
        goal_rot = rotvec_to_matrix(a[3:6] * cfg.rot_scale) @ rot
        self._goal = (goal_pos, goal_rot)
        # Solve on a scratch copy: a few Gauss-Newton steps remove most of the linearisation error of
        # 5 cm / 0.5 rad moves, which a single step would turn into sideways drift.
        scratch = self._scratch
        scratch.qpos[:] = self._data.qpos
        q = scratch.qpos[self._index.arm_qpos].copy()
        jac = np.zeros((6, 7))
        for _ in range(cfg.ik_iterations):
            mujoco.mj_kinematics(self._model, scratch)
            mujoco.mj_comPos(self._model, scratch)
            err = np.concatenate(
                [
                    goal_pos - scratch.site_xpos[site],
                    matrix_to_rotvec(goal_rot @ scratch.site_xmat[site].reshape(3, 3).T),
                ]
            )
            mujoco.mj_jacSite(self._model, scratch, self._jacp, self._jacr, site)
            jac[:3] = self._jacp[:, self._index.arm_dof]
            jac[3:] = self._jacr[:, self._index.arm_dof]
            q += jac.T @ np.linalg.solve(jac @ jac.T + cfg.damping**2 * np.eye(6), err)
            scratch.qpos[self._index.arm_qpos] = q
        # The exact (undamped) null-space projector: a damped one would leak the posture pull into
        # the end-effector pose and cause slow drift while the action is zero.
        null = np.eye(7) - np.linalg.pinv(jac) @ jac
        q += null @ (cfg.nullspace_gain * (self._home - q))
        return np.clip(q, self._q_lo, self._q_hi)

    @staticmethod
    def finger_target(gripper_action: float) -> float:
        """Per-finger opening (m) for a gripper action in [-1 (open), 1 (closed)]."""
        g = float(np.clip(gripper_action, -1.0, 1.0))
        return panda.FINGER_RANGE[1] * (1.0 - g) / 2.0

    def apply(self, action: np.ndarray) -> None:
        """Set `data.ctrl` for one control step."""
        ctrl = self._data.ctrl
        ctrl[self._index.arm_ctrl] = self.joint_targets(action)
        ctrl[self._index.finger_ctrl] = self.finger_target(float(action[6]))
