"""`TabletopEnv`: a Gymnasium-style MuJoCo tabletop task driven by LIBERO-style 7-d actions.

Observations: {"agentview": uint8 (H, W, 3), "wrist": uint8 (H, W, 3), "state": float32 (9,)}, where
state = 7 arm joint angles (rad) + 2 finger openings (m); images are omitted when `render=False`.
Actions: float (7,), see `robopolicy.sim.controller`. Control runs at 20 Hz, physics at 500 Hz.

Initial states are compact MuJoCo state vectors (`mj_getState` with `STATE_SPEC`: qpos, qvel, act,
ctrl, the fixtures' mocap poses and the cue choice in userdata). Collection draws them with
`sample_init_state(seed)` (seed stream 0); evaluation uses the fixed states of
`robopolicy.sim.init_states` (a disjoint seed stream). Stepping is bitwise deterministic.

Rendering is headless: `robopolicy.sim/__init__.py` sets `MUJOCO_GL=egl` unless it is already set
(e.g. to `osmesa`), before any submodule imports mujoco.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from robopolicy.sim import panda
from robopolicy.sim.camera_renderer import CameraRenderer
from robopolicy.sim.controller import ACTION_DIM, ControllerConfig, DeltaEEController
from robopolicy.sim.scene_task import SceneTask
from robopolicy.tasks.scene_mjcf import SUBSTEPS, RenderConfig, scene_mjcf
from robopolicy.tasks.spec import SCENE_CAMERAS, TaskSpec, load_task_spec

CAMERAS = SCENE_CAMERAS
STATE_DIM = 9
# Physics and controls, plus the fixtures' poses (mocap) and the cue choice (userdata).
STATE_SPEC = int(
    mujoco.mjtState.mjSTATE_PHYSICS
    | mujoco.mjtState.mjSTATE_CTRL
    | mujoco.mjtState.mjSTATE_MOCAP_POS
    | mujoco.mjtState.mjSTATE_MOCAP_QUAT
    | mujoco.mjtState.mjSTATE_USERDATA
)
COLLECTION_STREAM = 0  # seed stream of `sample_init_state(seed)`; fixed eval states use another one
_SETTLE_PHYSICS_STEPS = 50  # 0.1 s: lets objects and fingers come to rest before the state is recorded


@dataclass(frozen=True)
class EnvConfig:
    """image_size: square image side (pixels). cameras: which cameras to render, in order.

    render: False skips rendering entirely (observations then hold only "state").
    """

    task: str = "cube_on_plate"
    image_size: int = 128
    cameras: tuple[str, ...] = CAMERAS
    render: bool = True
    render_options: RenderConfig = field(default_factory=RenderConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    robot: panda.PandaConfig = field(default_factory=panda.PandaConfig)

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"EnvConfig.image_size must be in [16, 1024], got {self.image_size}")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"EnvConfig.cameras must be distinct names from {CAMERAS}, got {self.cameras}")


def scene_xml(
    spec: TaskSpec,
    render: RenderConfig | None = None,
    robot: panda.PandaConfig | None = None,
    max_image_size: int = 640,
) -> str:
    """MJCF of a task's scene with the robot in it. `max_image_size` sizes the offscreen framebuffer (px)."""
    return scene_mjcf(spec, panda.panda_mjcf(robot or panda.PandaConfig()), render, max_image_size)


def task_key(task: str) -> int:
    """Stable 32-bit key of a task name, used to seed its random streams (Python's hash() is salted)."""
    return zlib.crc32(task.encode("utf-8"))


class TabletopEnv:
    """Tabletop manipulation env of one task; see the module docstring for spaces and units."""

    action_dim: int = ACTION_DIM
    state_dim: int = STATE_DIM

    def __init__(
        self,
        task: str = "cube_on_plate",
        image_size: int = 128,
        cameras: tuple[str, ...] = CAMERAS,
        render: bool = True,
        render_options: RenderConfig | None = None,
        controller: ControllerConfig | None = None,
        *,
        config: EnvConfig | None = None,
    ) -> None:
        if config is None:
            config = EnvConfig(
                task=task,
                image_size=image_size,
                cameras=tuple(cameras),
                render=render,
                render_options=render_options or RenderConfig(),
                controller=controller or ControllerConfig(),
            )
        self._config = config
        self._spec = load_task_spec(config.task)
        self._xml = scene_xml(self._spec, config.render_options, config.robot, config.image_size)
        self._model = mujoco.MjModel.from_xml_string(self._xml)
        self._data = mujoco.MjData(self._model)
        self._index = panda.RobotIndex.from_model(self._model)
        self._task = SceneTask(self._spec, self._model, self._index.pad_geoms)
        self._controller = DeltaEEController(self._model, self._data, self._index, config.controller)
        self._renderer = (
            CameraRenderer(self._model, config.image_size, config.cameras, config.render_options)
            if config.render and config.cameras
            else None
        )
        self._state_size = mujoco.mj_stateSize(self._model, STATE_SPEC)
        self._seed_rng = np.random.default_rng()
        self._steps = 0
        self._needs_reset = True

    # ----- read-only views (the scripted expert and tests use privileged state) -----
    @property
    def config(self) -> EnvConfig:
        return self._config

    @property
    def spec(self) -> TaskSpec:
        return self._spec

    @property
    def scene_task(self) -> SceneTask:
        """The task's runtime: its objects' addresses, goal and cue."""
        return self._task

    @property
    def instruction(self) -> str:
        return self._spec.instruction

    @property
    def max_steps(self) -> int:
        return self._spec.max_steps

    @property
    def model(self) -> mujoco.MjModel:
        return self._model

    @property
    def data(self) -> mujoco.MjData:
        return self._data

    @property
    def index(self) -> panda.RobotIndex:
        return self._index

    @property
    def xml(self) -> str:
        """The generated MJCF of the scene (hashed to detect model changes)."""
        return self._xml

    @property
    def state_size(self) -> int:
        """Length of the vectors returned by `get_state` / `sample_init_state`."""
        return self._state_size

    @property
    def num_steps(self) -> int:
        """Control steps taken since the last reset."""
        return self._steps

    # ----- state -----
    def get_state(self) -> np.ndarray:
        """(state_size,) float64 state of the current moment: qpos, qvel, act, ctrl, the fixtures' mocap
        poses and the cue choice (userdata), so that layout and cue are restored with the state.
        """
        state = np.empty(self._state_size)
        mujoco.mj_getState(self._model, self._data, state, STATE_SPEC)
        return state

    def _set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self._state_size,):
            raise ValueError(f"init_state must have shape ({self._state_size},), got {state.shape}")
        # Reset first so that everything outside the state vector (warm starts, time) is identical
        # on every restore: that is what makes rollouts bitwise reproducible.
        mujoco.mj_resetData(self._model, self._data)
        mujoco.mj_setState(self._model, self._data, state, STATE_SPEC)
        mujoco.mj_forward(self._model, self._data)

    def sample_init_state(self, seed: int, stream: int = COLLECTION_STREAM) -> np.ndarray:
        """(state_size,) initial state drawn from the task spec with `SeedSequence([task_key, stream, seed])`.

        The env's current episode is overwritten; call `reset` afterwards.
        """
        rng = np.random.default_rng([task_key(self._spec.name), stream, seed])
        d = self._data
        mujoco.mj_resetData(self._model, d)
        d.qpos[self._index.arm_qpos] = panda.HOME_QPOS
        d.qpos[self._index.finger_qpos] = panda.FINGER_RANGE[1]
        d.ctrl[self._index.arm_ctrl] = panda.HOME_QPOS
        d.ctrl[self._index.finger_ctrl] = panda.FINGER_RANGE[1]
        self._task.sample(d, rng)
        for _ in range(_SETTLE_PHYSICS_STEPS):
            mujoco.mj_step(self._model, d)
        self._needs_reset = True
        return self.get_state()

    # ----- episode API -----
    def reset(
        self, *, init_state: np.ndarray | None = None, seed: int | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode from `init_state` (restored exactly) or from `sample_init_state(seed)`."""
        if init_state is None:
            if seed is None:
                seed = int(self._seed_rng.integers(2**31))
            init_state = self.sample_init_state(seed)
        self._set_state(init_state)
        self._task.start(self._data)
        self._controller.reset()
        self._steps = 0
        self._needs_reset = False
        return self._observe(), self._info(None)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one 7-d action for 1/20 s. Returns (obs, reward, terminated, truncated, info)."""
        if self._needs_reset:
            raise RuntimeError(
                "TabletopEnv.step called before reset() or after the episode ended with a sim error"
            )
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        self._controller.apply(action)
        badqacc = mujoco.mjtWarning.mjWARN_BADQACC
        warnings_before = int(self._data.warning[badqacc].number)
        for _ in range(SUBSTEPS):
            mujoco.mj_step(self._model, self._data)
        # One forward pass so that images, contacts and predicates describe the final state.
        mujoco.mj_forward(self._model, self._data)
        self._steps += 1
        self._task.show_cue(self._steps)
        sim_error = self._check_sim(warnings_before)
        info = self._info(sim_error)
        terminated = bool(info["success"])
        truncated = self._steps >= self.max_steps or sim_error is not None
        if sim_error is not None:
            self._needs_reset = True
        return self._observe(), float(terminated), terminated, truncated, info

    def _check_sim(self, badqacc_before: int) -> str | None:
        d = self._data
        if int(d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number) > badqacc_before:
            return "physics became unstable (MuJoCo reported bad qacc and reset the simulation)"
        if not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))):
            return "physics produced NaN or Inf in qpos/qvel"
        if float(np.max(np.abs(d.qvel))) > 1e3:
            return "physics diverged (|qvel| > 1e3)"
        return None

    def _observe(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        if self._renderer is not None:
            obs.update(self._renderer.render(self._data))
        state = np.empty(STATE_DIM, dtype=np.float32)
        state[:7] = self._data.qpos[self._index.arm_qpos]
        state[7:] = self._data.qpos[self._index.finger_qpos]
        obs["state"] = state
        return obs

    def object_state(self) -> np.ndarray:
        """The objects' poses now, float32 [7 · bodies] (`SceneTask.object_poses`)."""
        return self._task.object_poses(self._data)

    # ----- goal -----
    def evaluate(self) -> dict[str, bool]:
        """Goal term values of the current state, keyed like `On(cube, plate)` (latches `once` terms)."""
        return self._task.evaluate(self._data)[0]

    def _info(self, sim_error: str | None) -> dict[str, Any]:
        values, success, reason = self._task.evaluate(self._data)
        if sim_error is not None:
            success, reason = False, sim_error
        return {"success": bool(success), **values, "sim_error": sim_error, "failure_reason": reason}

    def close(self) -> None:
        """Free the renderer's GL context. The env cannot render afterwards."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> TabletopEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
