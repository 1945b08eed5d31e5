"""A LIBERO task's environment as the client runs it: render options, episode start, physics errors.

Episodes start like openpi's LIBERO example: `reset`, LIBERO's fixed initial state, then settle steps
with a no-op action (zero motion, gripper open) while the objects LIBERO drops come to rest. The
environment is seeded once (openpi: 7), since the seed still moves objects under a fixed state.

Render options change the images, so a policy must be evaluated with the options its training data
was rendered with; the run's settings record them. Shadows and reflections are MuJoCo scene flags;
`msaa_samples` is the offscreen buffer's multisampling (MuJoCo's `visual/quality/offsamples`, 4 by
default); `camera_size` is the square render size (256 in openpi's example and LIBERO's datasets).
`cameras=False` renders nothing, for scripted experts (about ten times faster on a CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
from robosuite.utils.errors import SimulationError

from robopolicy_libero.suites import LiberoTask

NOOP_ACTION = np.array([0.0] * 6 + [-1.0])  # zero Δpose, gripper open
SETTLE_STEPS = 10
ENV_SEED = 7
# Errors a step raises when the simulation breaks (not bugs of the client): recorded as `sim_error`.
PHYSICS_ERRORS = (mujoco.FatalError, SimulationError, np.linalg.LinAlgError, FloatingPointError)


class PhysicsError(RuntimeError):
    """The simulation reached a non-finite state."""


@dataclass(frozen=True)
class RenderOptions:
    cameras: bool = True
    camera_size: int = 256
    shadows: bool = True
    reflections: bool = True
    msaa_samples: int = 4

    def settings(self) -> dict[str, Any]:
        return {
            "camera_size": self.camera_size,
            "shadows": self.shadows,
            "reflections": self.reflections,
            "msaa_samples": self.msaa_samples,
        }


class LiberoEnv:
    """One task's environment; `physics_seconds` and `render_seconds` add up the time its steps spent
    simulating and rendering the cameras since the episode started."""

    def __init__(self, task: LiberoTask, render: RenderOptions, seed: int = ENV_SEED) -> None:
        from libero.libero.envs import OffScreenRenderEnv
        from libero.libero.envs.env_wrapper import ControlEnv

        self.task = task
        self.render = render
        size = {"camera_heights": render.camera_size, "camera_widths": render.camera_size}
        if render.cameras:
            self._env = OffScreenRenderEnv(bddl_file_name=task.bddl_file, **size)
        else:
            self._env = ControlEnv(
                bddl_file_name=task.bddl_file, has_offscreen_renderer=False, use_camera_obs=False, **size
            )
        self._env.seed(seed)
        self.physics_seconds = self.render_seconds = 0.0

    @property
    def sim(self) -> Any:
        return self._env.env.sim

    @property
    def inner(self) -> Any:
        """LIBERO's problem env (objects, sites, parsed BDDL)."""
        return self._env.env

    def start(self, init_state_id: int, settle_steps: int = SETTLE_STEPS) -> dict[str, Any]:
        """Reset to LIBERO's initial state `init_state_id`, settle; the observation after settling."""
        self.physics_seconds = self.render_seconds = 0.0
        self._env.reset()
        self._configure_rendering()
        obs = self._env.set_init_state(self.task.init_states[init_state_id])
        for _ in range(settle_steps):
            obs, _, _ = self.step(NOOP_ACTION)
        return obs

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], bool, float]:
        """One control step (20 Hz): the observation, LIBERO's success check, the step's seconds.
        `PhysicsError` when the state stops being finite."""
        t0, rendered = time.perf_counter(), self.render_seconds
        obs, _, done, _ = self._env.step(np.asarray(action, np.float64))
        seconds = time.perf_counter() - t0
        self.physics_seconds += seconds - (self.render_seconds - rendered)
        data = self.sim.data
        if not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()):
            raise PhysicsError("the simulation state is not finite")
        return obs, bool(done), seconds

    def success(self) -> bool:
        return bool(self._env.check_success())

    def _configure_rendering(self) -> None:
        """Apply the render options to the offscreen context (the sim is rebuilt on every reset) and
        time every camera render."""
        if not self.render.cameras:
            return
        sim = self.sim
        context = sim._render_context_offscreen
        if context is None:
            return
        context.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(self.render.shadows)
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(self.render.reflections)
        if sim.model.vis.quality.offsamples != self.render.msaa_samples:
            sim.model.vis.quality.offsamples = self.render.msaa_samples
            context.con.free()
            context._set_mujoco_context_and_buffers()
        if not getattr(sim.render, "_timed", False):
            sim.render = self._timed(sim.render)

    def _timed(self, render: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return render(*args, **kwargs)
            finally:
                self.render_seconds += time.perf_counter() - t0

        timed._timed = True  # type: ignore[attr-defined]
        return timed

    def close(self) -> None:
        self._env.close()
