"""`make(task)`: a Gymnasium env (`gymnasium.Env`) over `TabletopEnv`.

Spaces: observations are a `Dict` of one `Box(0, 255, (H, W, 3), uint8)` per rendered camera plus
`"state": Box(-inf, inf, (S,), float32)` (7 arm joint angles in rad + 2 finger openings in m); actions
are `Box(-1, 1, (7,), float32)` (LIBERO-style delta end-effector pose + gripper, see
`robopolicy.sim.controller`). One step is 1/20 s.

Resets pick the initial state, in this order of precedence:
`options={"init_state": (D,) float64}` restores that exact physics state;
`options={"init_state_id": i}` uses the task's fixed evaluation state i (`load_init_states`);
otherwise a layout is sampled: with `seed=s` the collection-stream layout s (the same as
`TabletopEnv.reset(seed=s)` and `robopolicy collect`), with no seed one drawn from the env's
`np_random`, which a seeded reset makes reproducible.

Rewards are 1.0 on the step the task succeeds, else 0.0; success terminates, the step cap and
physics errors truncate (`info["sim_error"]`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from robopolicy.sim.env import EnvConfig, TabletopEnv
from robopolicy.tasks.scene_mjcf import CONTROL_HZ

GYM_ID = "robopolicy/Tabletop-v0"
RESET_OPTIONS = ("init_state", "init_state_id")
_SEED_RANGE = 2**31  # seeds drawn from np_random for unseeded resets


def env_config(task: str | None, config: EnvConfig | None = None, **env_kwargs: Any) -> EnvConfig:
    """EnvConfig from `config` or from TabletopEnv's keyword arguments (image_size, cameras, render, ...).

    `task` overrides the config's task unless it is None; without a config, None means cube_on_plate.
    """
    if config is not None:
        if env_kwargs:
            raise ValueError(f"pass either config or env keyword arguments, not both: {sorted(env_kwargs)}")
        return config if task is None else replace(config, task=task)
    if task is None:
        task = EnvConfig.task
    if "cameras" in env_kwargs:
        env_kwargs["cameras"] = tuple(env_kwargs["cameras"])
    if env_kwargs.get("render_options") is None:
        env_kwargs.pop("render_options", None)
    if env_kwargs.get("controller") is None:
        env_kwargs.pop("controller", None)
    return EnvConfig(task=task, **env_kwargs)


def rendered_cameras(config: EnvConfig) -> tuple[str, ...]:
    """The cameras whose images appear in observations (none when render=False)."""
    return config.cameras if config.render else ()


def observation_space(config: EnvConfig) -> spaces.Dict:
    """Observation space of an env with this config, computed without building a MuJoCo model."""
    size = config.image_size
    entries: dict[str, spaces.Space[Any]] = {
        cam: spaces.Box(0, 255, (size, size, 3), np.uint8) for cam in rendered_cameras(config)
    }
    entries["state"] = spaces.Box(-np.inf, np.inf, (TabletopEnv.state_dim,), np.float32)
    return spaces.Dict(entries)


def action_space() -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (TabletopEnv.action_dim,), np.float32)


class TabletopGymEnv(gymnasium.Env[dict[str, np.ndarray], np.ndarray]):
    """Gymnasium view of one `TabletopEnv`; see the module docstring for spaces and resets.

    `task` (default cube_on_plate) or `config=EnvConfig(...)` with the task in it.

    render_mode "rgb_array": `render()` returns the current camera images side by side,
    uint8 (H, W * num_cameras, 3); it needs render=True (an env without cameras lists no render modes).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}  # noqa: RUF012

    def __init__(
        self,
        task: str | None = None,
        render_mode: str | None = None,
        *,
        config: EnvConfig | None = None,
        **env_kwargs: Any,
    ) -> None:
        self._config = env_config(task, config, **env_kwargs)
        if not rendered_cameras(self._config):
            # Without cameras there is nothing to render; saying so keeps env checkers honest.
            self.metadata = {**type(self).metadata, "render_modes": []}
        if render_mode not in (None, *type(self).metadata["render_modes"]):
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode}"
            )
        if render_mode is not None and not rendered_cameras(self._config):
            raise ValueError("render_mode='rgb_array' needs render=True and at least one camera")
        self.render_mode = render_mode
        self.observation_space = observation_space(self._config)
        self.action_space = action_space()
        self._sim = TabletopEnv(config=self._config)
        self._fixed_states: np.ndarray | None = None
        self._last_obs: dict[str, np.ndarray] | None = None

    @property
    def sim(self) -> TabletopEnv:
        """The wrapped env, with privileged state for scripted experts and tests."""
        return self._sim

    @property
    def config(self) -> EnvConfig:
        return self._config

    @property
    def instruction(self) -> str:
        return self._sim.instruction

    @property
    def max_steps(self) -> int:
        return self._sim.max_steps

    def fixed_init_states(self) -> np.ndarray:
        """(50, D) float64 fixed evaluation states of the task, loaded once."""
        if self._fixed_states is None:
            from robopolicy.sim.init_states import load_init_states

            self._fixed_states = load_init_states(self._config.task, self._sim)
        return self._fixed_states

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: {list(RESET_OPTIONS)}")
        if "init_state" in options and "init_state_id" in options:
            raise ValueError("pass at most one of the reset options 'init_state' and 'init_state_id'")
        if options.get("init_state") is not None:
            obs, info = self._sim.reset(init_state=np.asarray(options["init_state"], dtype=np.float64))
        elif options.get("init_state_id") is not None:
            obs, info = self._sim.reset(init_state=self._fixed_state(options["init_state_id"]))
        else:
            layout_seed = seed if seed is not None else int(self.np_random.integers(_SEED_RANGE))
            obs, info = self._sim.reset(seed=layout_seed)
        self._last_obs = obs
        return obs, info

    def _fixed_state(self, index: int) -> np.ndarray:
        states = self.fixed_init_states()
        if not 0 <= int(index) < len(states):
            raise ValueError(
                f"init_state_id {index} is out of range: task '{self._config.task}' has {len(states)} fixed states"
            )
        return states[int(index)]

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._sim.step(np.asarray(action))
        self._last_obs = obs
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """uint8 (H, W * num_cameras, 3) images of the current state, or None without a render mode."""
        if self.render_mode is None:
            return None
        if self._last_obs is None:
            raise RuntimeError("render() called before reset()")
        return np.concatenate([self._last_obs[cam] for cam in rendered_cameras(self._config)], axis=1)

    def close(self) -> None:
        self._sim.close()


def make(task: str | None = None, render_mode: str | None = None, **env_kwargs: Any) -> TabletopGymEnv:
    """A Gymnasium env for `task` (default cube_on_plate); `env_kwargs` are TabletopEnv's
    (image_size, cameras, render, render_options, controller) or `config=EnvConfig(...)`.
    """
    return TabletopGymEnv(task, render_mode, **env_kwargs)


def register() -> None:
    """Register `GYM_ID` so that `gymnasium.make("robopolicy/Tabletop-v0", task=...)` works."""
    if GYM_ID not in gymnasium.registry:
        gymnasium.register(id=GYM_ID, entry_point=TabletopGymEnv)
