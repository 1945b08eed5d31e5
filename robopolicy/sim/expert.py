"""Scripted expert for cube-on-plate, using privileged simulator state.

Phases: reach above the cube (aligning yaw with a cube face) -> descend -> grasp -> lift -> carry
above the plate -> lower -> release -> retreat -> hold still. Each phase is a proportional controller on
a target pose whose output is saturated at |a| <= 1 as a whole vector (so motion stays straight and
the action changes smoothly); phases switch on reached-target conditions, each with a step budget so
the script never stalls. The actions are the same normalised 7-d actions a policy outputs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robopolicy.sim.env import TabletopEnv
from robopolicy.sim.rotations import matrix_to_rotvec, quat_to_yaw, rot_z, wrap_angle
from robopolicy.sim.scene import PLATE_HALF_HEIGHT

# Grip-site orientation of the home posture: pointing down, fingers closing along world y.
_DOWN = np.diag([1.0, -1.0, -1.0])


class Phase(enum.IntEnum):
    REACH = 0
    DESCEND = 1
    GRASP = 2
    LIFT = 3
    CARRY = 4
    LOWER = 5
    RELEASE = 6
    RETREAT = 7
    HOLD = 8


@dataclass(frozen=True)
class ExpertConfig:
    """Distances in m, angles in rad, durations in control steps (20 Hz).

    hover_height: grip-site height above the cube centre at the end of REACH.
    carry_clearance: cube-bottom clearance above the plate top while carrying.
    place_clearance: cube-bottom height above the plate top at which the cube is let go.
    retreat_height: how far the gripper rises after releasing.
    pos_gain, rot_gain: fraction of the remaining error commanded per step.
    pos_tol, yaw_tol: "reached" thresholds.
    grasp_steps, release_steps: gripper closing / opening time.
    phase_budget: maximum steps of any single motion phase before moving on.
    max_action: largest |a| component of the arm action; 0.35 caps the hand at 0.35 m/s, a calm pace
        that gives behaviour cloning several frames per phase.
    """

    hover_height: float = 0.07
    carry_clearance: float = 0.07
    place_clearance: float = 0.012
    retreat_height: float = 0.06
    pos_gain: float = 0.6
    rot_gain: float = 0.6
    pos_tol: float = 0.008
    yaw_tol: float = 0.05
    grasp_steps: int = 5
    release_steps: int = 4
    phase_budget: int = 40
    max_action: float = 0.35

    def __post_init__(self) -> None:
        for name in ("hover_height", "carry_clearance", "retreat_height", "pos_tol", "yaw_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ExpertConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("pos_gain", "rot_gain", "max_action"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"ExpertConfig.{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("grasp_steps", "release_steps", "phase_budget"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"ExpertConfig.{name} must be >= 1, got {getattr(self, name)}")


def _saturate(a: np.ndarray, limit: float) -> np.ndarray:
    # Scale the whole vector, not each component, so the direction of motion is kept.
    peak = float(np.max(np.abs(a)))
    return a * (limit / peak) if peak > limit else a


class CubeOnPlateExpert:
    """Scripted expert; call `reset()` after every `env.reset()`, then `act()` once per step."""

    def __init__(self, env: TabletopEnv, config: ExpertConfig | None = None) -> None:
        self._env = env
        self._config = config or ExpertConfig()
        self._pos_scale = env.config.controller.pos_scale
        self._rot_scale = env.config.controller.rot_scale
        self._half = env.spec.cube_size / 2.0
        self.reset()

    @property
    def phase(self) -> Phase:
        return self._phase

    def reset(self) -> None:
        """Forget the previous episode; the next `act()` starts from REACH."""
        self._phase = Phase.REACH
        self._phase_steps = 0
        self._grasp_yaw = 0.0
        self._retreat_target = np.zeros(3)

    # ----- privileged state -----
    def _grip(self) -> tuple[np.ndarray, np.ndarray]:
        d, idx = self._env.data, self._env.index
        return d.site_xpos[idx.grip_site].copy(), d.site_xmat[idx.grip_site].reshape(3, 3).copy()

    def _cube(self) -> tuple[np.ndarray, float]:
        d, idx = self._env.data, self._env.index
        return d.xpos[idx.cube_body].copy(), quat_to_yaw(d.xquat[idx.cube_body])

    def _plate_top(self) -> np.ndarray:
        d, idx = self._env.data, self._env.index
        pos = d.xpos[idx.plate_body].copy()
        pos[2] += PLATE_HALF_HEIGHT
        return pos

    def _finger_opening(self) -> float:
        d, idx = self._env.data, self._env.index
        return float(np.mean(d.qpos[idx.finger_qpos]))

    # ----- control laws -----
    def _translation(self, error: np.ndarray) -> np.ndarray:
        return _saturate(self._config.pos_gain * error / self._pos_scale, self._config.max_action)

    def _rotation(self, rot: np.ndarray, yaw: float) -> np.ndarray:
        target = rot_z(yaw) @ _DOWN
        error = matrix_to_rotvec(target @ rot.T)
        return _saturate(self._config.rot_gain * error / self._rot_scale, self._config.max_action)

    def _grasp_yaw_for(self, cube_yaw: float, grip_rot: np.ndarray) -> float:
        # The cube looks the same every 90°: pick the face pair nearest to the gripper's current yaw.
        grip_yaw = float(np.arctan2(grip_rot[1, 0], grip_rot[0, 0]))
        return grip_yaw + wrap_angle(cube_yaw - grip_yaw, np.pi / 2)

    def _advance(self, phase: Phase) -> None:
        self._phase = phase
        self._phase_steps = 0

    def act(self) -> np.ndarray:
        """Next action, float32 (7,): [dx, dy, dz, drx, dry, drz, gripper], each in [-1, 1]."""
        cfg = self._config
        grip, rot = self._grip()
        cube, cube_yaw = self._cube()
        self._phase_steps += 1
        over_budget = self._phase_steps > cfg.phase_budget
        phase = self._phase

        if phase in (Phase.REACH, Phase.DESCEND):
            self._grasp_yaw = self._grasp_yaw_for(cube_yaw, rot)
            height = cfg.hover_height if phase is Phase.REACH else 0.0
            error = cube + np.array([0.0, 0.0, height]) - grip
            yaw_err = abs(wrap_angle(float(np.arctan2(rot[1, 0], rot[0, 0])) - self._grasp_yaw))
            if phase is Phase.REACH:
                # Descend once roughly above the cube; the descent corrects the rest.
                if (np.linalg.norm(error[:2]) < 1.5 * cfg.pos_tol and yaw_err < cfg.yaw_tol) or over_budget:
                    self._advance(Phase.DESCEND)
            elif np.linalg.norm(error) < cfg.pos_tol or over_budget:
                self._advance(Phase.GRASP)
            return self._action(self._translation(error), self._rotation(rot, self._grasp_yaw), -1.0)

        if phase is Phase.GRASP:
            if self._phase_steps >= cfg.grasp_steps:
                self._advance(Phase.LIFT)
            return self._action(np.zeros(3), self._rotation(rot, self._grasp_yaw), 1.0)

        plate = self._plate_top()
        carry_z = plate[2] + cfg.carry_clearance + self._half
        if phase is Phase.LIFT:
            # Straight up first, so the cube does not drag across the table.
            error = np.array([0.0, 0.0, carry_z - cube[2]])
            if cube[2] > carry_z - 0.03 or over_budget:
                self._advance(Phase.CARRY)
            return self._action(self._translation(error), self._rotation(rot, self._grasp_yaw), 1.0)

        if phase is Phase.CARRY:
            # Steer the cube itself (not the grip site) so any in-hand offset is corrected.
            error = np.array([plate[0] - cube[0], plate[1] - cube[1], carry_z - cube[2]])
            if np.linalg.norm(error[:2]) < cfg.pos_tol or over_budget:
                self._advance(Phase.LOWER)
            return self._action(self._translation(error), self._rotation(rot, self._grasp_yaw), 1.0)

        if phase is Phase.LOWER:
            place_z = plate[2] + cfg.place_clearance + self._half
            error = np.array([plate[0] - cube[0], plate[1] - cube[1], place_z - cube[2]])
            if np.linalg.norm(error) < cfg.pos_tol or over_budget:
                self._advance(Phase.RELEASE)
            return self._action(self._translation(error), self._rotation(rot, self._grasp_yaw), 1.0)

        if phase is Phase.RELEASE:
            if self._phase_steps >= cfg.release_steps:
                self._retreat_target = grip + np.array([0.0, 0.0, cfg.retreat_height])
                self._advance(Phase.RETREAT)
            return self._action(np.zeros(3), self._rotation(rot, self._grasp_yaw), -1.0)

        if phase is Phase.RETREAT:
            error = self._retreat_target - grip
            if np.linalg.norm(error) < cfg.pos_tol or over_budget:
                self._advance(Phase.HOLD)
            return self._action(self._translation(error), self._rotation(rot, self._grasp_yaw), -1.0)

        return self._action(np.zeros(3), np.zeros(3), -1.0)

    @staticmethod
    def _action(translation: np.ndarray, rotation: np.ndarray, gripper: float) -> np.ndarray:
        return np.concatenate([translation, rotation, [gripper]]).astype(np.float32)


class Expert(Protocol):
    """What rollouts need from a scripted expert."""

    @property
    def phase(self) -> int: ...

    def reset(self) -> None: ...

    def act(self) -> np.ndarray: ...


def make_expert(env: TabletopEnv) -> Expert:
    """The scripted expert of the env's task: the cube-on-plate script or the spec-driven one."""
    if env.scene_task is None:
        return CubeOnPlateExpert(env)
    from robopolicy.sim.spec_expert import SpecExpert

    return SpecExpert(env)


def run_expert_episode(
    env: TabletopEnv,
    init_state: np.ndarray | None = None,
    seed: int | None = None,
    *,
    expert: Expert | None = None,
    noise_std: float = 0.0,
    noise_seed: int | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Roll out the expert for one episode, stopping at success, truncation or a sim error.

    With `noise_std > 0`, Gaussian noise (std in normalised action units, on the 3 translation dims) is added
    to the *executed* action, while `actions` records the clean expert action: the demonstrations then
    show how to recover from small perturbations.

    Returns a dict with
      observations: list of T+1 obs dicts (the last one follows the last action),
      actions: float32 (T, 7) clean expert actions,
      executed_actions: float32 (T, 7) actions sent to the env,
      rewards: float32 (T,), success: bool, num_steps: int (T), init_state: float64 (D,),
      sim_error: str | None, failure_reason: str | None, phases: int8 (T,) expert phase per step.
    """
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if init_state is None:
        init_state = env.sample_init_state(0 if seed is None else seed)
    obs, info = env.reset(init_state=init_state)
    expert = expert or make_expert(env)
    expert.reset()
    rng = np.random.default_rng(noise_seed)
    limit = env.max_steps if max_steps is None else max_steps
    observations, actions, executed, rewards, phases = [obs], [], [], [], []
    success = False
    for _ in range(limit):
        phases.append(int(expert.phase))
        action = expert.act()
        todo = action.copy()
        if noise_std > 0:
            todo[:3] = np.clip(todo[:3] + rng.normal(0.0, noise_std, size=3), -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(todo)
        observations.append(obs)
        actions.append(action)
        executed.append(todo)
        rewards.append(reward)
        success = bool(info["success"])
        if terminated or truncated:
            break
    return {
        "observations": observations,
        "actions": np.asarray(actions, dtype=np.float32).reshape(-1, 7),
        "executed_actions": np.asarray(executed, dtype=np.float32).reshape(-1, 7),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "success": success,
        "num_steps": len(actions),
        "init_state": np.asarray(init_state, dtype=np.float64),
        "sim_error": info["sim_error"],
        "failure_reason": info.get("failure_reason"),
        "phases": np.asarray(phases, dtype=np.int8),
    }
