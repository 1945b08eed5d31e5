"""A vector env whose envs run one after another in this process: the episode loop's env when no
worker processes are wanted (one sweep unit, `robopolicy eval --checkpoint`, a notebook).

`make_in_process(tasks, **env_kwargs)` takes `robopolicy.sim.make_vector`'s arguments and gives the
interface the episode loop uses of it, with DISABLED autoreset only: `reset(options=...)` with
`init_state_id` and `reset_mask`; `step` steps every env whose episode has not ended (an ended one
keeps its last observation and repeats its final flags, with its info masked out); infos are
batched with `_key` masks; `instructions`, `max_steps`; an exception raised inside an env is raised,
after the other envs have stepped, as `WorkerError` with one "env i (task): …" line per failing env.

Unlike worker processes it can time rendering apart from physics: `step_times` holds, per env, the
physics and the render seconds of the last step.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from robopolicy.sim.gym_env import TabletopGymEnv, make
from robopolicy.sim.vector_env import WorkerError

_RESET_OPTIONS = ("init_state_id", "reset_mask")


class _RenderTimer:
    """Times one env's observation (render) calls; wraps the env's own method on this instance only."""

    def __init__(self, env: TabletopGymEnv) -> None:
        self.seconds = 0.0
        sim = env.sim
        observe = getattr(sim, "_observe", None)
        if observe is None:  # nothing to time: rendering counts as physics
            return

        def timed() -> dict[str, np.ndarray]:
            t0 = time.perf_counter()
            try:
                return observe()
            finally:
                self.seconds += time.perf_counter() - t0

        sim._observe = timed  # type: ignore[method-assign]


class InProcessVectorEnv(VectorEnv):
    """`len(tasks)` envs stepped in turn in this process; see the module docstring."""

    def __init__(self, tasks: Sequence[str], **env_kwargs: Any) -> None:
        if not tasks:
            raise ValueError("an in-process vector env needs at least one task")
        self._envs = [make(task, **env_kwargs) for task in tasks]
        self._timers = [_RenderTimer(env) for env in self._envs]
        self.num_envs = len(self._envs)
        self.metadata = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": []}
        self.single_observation_space = self._envs[0].observation_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = self._envs[0].action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs: list[dict[str, np.ndarray] | None] = [None] * self.num_envs
        self._ended = np.zeros(self.num_envs, bool)
        self._terminated = np.zeros(self.num_envs, bool)
        self._truncated = np.zeros(self.num_envs, bool)
        self.step_times = (np.zeros(self.num_envs), np.zeros(self.num_envs))

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(env.config.task for env in self._envs)

    @property
    def instructions(self) -> tuple[str, ...]:
        return tuple(env.instruction for env in self._envs)

    @property
    def max_steps(self) -> tuple[int, ...]:
        return tuple(env.max_steps for env in self._envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the envs of `reset_mask` (default all); env i gets seed + i and `init_state_id[i]`."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: {list(_RESET_OPTIONS)}")
        n = self.num_envs
        mask = (
            np.ones(n, bool) if options.get("reset_mask") is None else np.asarray(options["reset_mask"], bool)
        )
        ids = options.get("init_state_id")
        ids = [ids] * n if ids is None or np.ndim(ids) == 0 else list(ids)
        infos: dict[str, Any] = {}
        for i in map(int, np.flatnonzero(mask)):
            reset_options = {} if ids[i] is None else {"init_state_id": int(ids[i])}
            env_seed = None if seed is None else seed + i
            self._obs[i], info = self._envs[i].reset(seed=env_seed, options=reset_options)
            infos = self._add_info(infos, info, i)
        self._ended[mask] = False
        return self._observations(), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if any(o is None for o in self._obs):
            raise RuntimeError("call reset() on every env before step()")
        rewards = np.zeros(self.num_envs)
        infos: dict[str, Any] = {}
        errors: list[str] = []
        physics, render = np.zeros(self.num_envs), np.zeros(self.num_envs)
        for i, env in enumerate(self._envs):
            if self._ended[i]:  # DISABLED autoreset: an ended episode waits for its reset
                continue
            render0, t0 = self._timers[i].seconds, time.perf_counter()
            try:
                obs, reward, terminated, truncated, info = env.step(actions[i])
            except Exception as e:  # the env itself failed; reported after the others have stepped
                errors.append(
                    f"env {i} ({env.config.task}): {type(e).__name__}: {e}\n{traceback.format_exc()}"
                )
                continue
            finally:
                render[i] = self._timers[i].seconds - render0
                physics[i] = max(time.perf_counter() - t0 - render[i], 0.0)
            self._obs[i], rewards[i] = obs, reward
            self._terminated[i], self._truncated[i] = terminated, truncated
            self._ended[i] = terminated or truncated
            infos = self._add_info(infos, info, i)
        self.step_times = (physics, render)
        if errors:
            raise WorkerError("\n".join(errors))
        return self._observations(), rewards, self._terminated.copy(), self._truncated.copy(), infos

    def _observations(self) -> dict[str, np.ndarray]:
        filled = [o for o in self._obs if o is not None]
        blank = {k: np.zeros_like(v) for k, v in filled[0].items()}
        return {k: np.stack([(o or blank)[k] for o in self._obs]) for k in blank}

    def close_extras(self, **kwargs: Any) -> None:
        for env in self._envs:
            env.close()


def make_in_process(
    task_or_tasks: str | Sequence[str],
    num_envs: int | None = None,
    *,
    autoreset_mode: str = "Disabled",
    **env_kwargs: Any,
) -> InProcessVectorEnv:
    """An `InProcessVectorEnv` with `make_vector`'s arguments (DISABLED autoreset only)."""
    if AutoresetMode(autoreset_mode) != AutoresetMode.DISABLED:
        raise ValueError("an in-process vector env supports autoreset_mode DISABLED only")
    tasks = [task_or_tasks] * (num_envs or 1) if isinstance(task_or_tasks, str) else list(task_or_tasks)
    return InProcessVectorEnv(tasks, **env_kwargs)
