"""One stored evaluation episode: settle, run the policy to success or the step cap, time the parts.

Faults become the episode's failure reason instead of ending the sweep: a physics blow-up (the
env's `sim_error`) and an exception raised by the policy. Times are split into policy inference,
physics (the env step without its observation) and rendering (the env's observation, which is
the camera render plus a copy of the proprio state).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robopolicy.eval.episode_outcome import episode_failure_reason
from robopolicy.eval.execution import NOOP_ACTION, ExecutionSettings
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord
from robopolicy.eval.video import compose_frame, with_caption, with_status, with_verdict, write_mp4
from robopolicy.sim import TabletopEnv


class _ObservationTimer:
    """Times the env's observation (render) calls; wraps the env's own method on this instance only."""

    def __init__(self, env: TabletopEnv) -> None:
        self.seconds = 0.0
        observe: Callable[[], dict[str, np.ndarray]] | None = getattr(env, "_observe", None)
        if observe is None:
            return

        def timed() -> dict[str, np.ndarray]:
            t0 = time.perf_counter()
            try:
                return observe()
            finally:
                self.seconds += time.perf_counter() - t0

        env._observe = timed  # type: ignore[method-assign]


def episode_seed(key: EpisodeKey) -> int:
    """The policy's sampling seed for an episode: a function of the key only, so order does not matter."""
    text = f"{key.task}/{key.init_state_id}/{key.seed}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def run_stored_episode(
    env: TabletopEnv,
    runner: PolicyRunner,
    init_state: np.ndarray,
    key: EpisodeKey,
    settings: ExecutionSettings,
    *,
    suite: str = "",
    video_path: Path | None = None,
    video_scale: int = 2,
) -> EpisodeRecord:
    """Run one episode and return its record (nothing is written to the store here)."""
    timer: _ObservationTimer = getattr(env, "_robopolicy_timer", None) or _ObservationTimer(env)
    env._robopolicy_timer = timer  # type: ignore[attr-defined]
    cap = settings.step_cap(suite, env.max_steps)
    frames: list[np.ndarray] | None = [] if video_path is not None else None
    t_start = time.perf_counter()
    env_seconds = 0.0
    success, steps, reason = False, 0, None
    info: dict[str, Any] = {}
    obs, info = env.reset(init_state=init_state)
    runner.reset(seed=episode_seed(key), instruction=env.instruction)
    noop = np.asarray(NOOP_ACTION, np.float64)
    for _ in range(settings.settle_steps):
        obs, _, _, _, info = env.step(noop)
        if info.get("sim_error"):
            break
    # The time split covers the policy's steps only; reset and settle count towards wall time alone.
    render0, policy0 = timer.seconds, runner.inference_seconds
    while steps < cap and not info.get("sim_error"):
        try:
            action = runner.act(obs)
        except Exception as e:  # a policy bug must not end the sweep: it is this episode's failure
            reason = f"policy_error: {type(e).__name__}: {e}".splitlines()[0][:300]
            break
        t0 = time.perf_counter()
        try:
            obs, _, terminated, truncated, info = env.step(action)
        except ValueError as e:  # e.g. a NaN action from the policy
            reason = f"policy_error: invalid action: {e}".splitlines()[0][:300]
            break
        except Exception as e:  # the simulator itself failed: a physics fault of this episode
            reason = f"sim_error: {type(e).__name__}: {e}".splitlines()[0][:300]
            break
        env_seconds += time.perf_counter() - t0
        steps += 1
        success = bool(info["success"])
        if frames is not None:
            frames.append(with_status(compose_frame(obs, env.config.cameras, video_scale), None))
        if terminated or (truncated and steps >= cap) or info.get("sim_error"):
            break
    if reason is None:
        reason = episode_failure_reason(info, success)
        if not success and steps >= cap and reason and reason.startswith("timeout"):
            reason = f"{reason} (cap {cap} steps)"
    video = None
    if video_path is not None and frames:
        last = with_status(compose_frame(obs, env.config.cameras, video_scale), success)
        frames.extend([last] * 10)  # hold the verdict on screen for half a second
        frames = [with_verdict(with_caption(f, env.instruction), success) for f in frames]
        video = str(write_mp4(video_path, frames))
    render = timer.seconds - render0
    return EpisodeRecord(
        task=key.task,
        init_state_id=key.init_state_id,
        seed=key.seed,
        success=success,
        steps=steps,
        failure_reason=reason,
        wall_seconds=time.perf_counter() - t_start,
        suite=suite,
        policy_seconds=runner.inference_seconds - policy0,
        physics_seconds=max(env_seconds - render, 0.0),
        render_seconds=render,
        video_path=video,
        instruction=env.instruction,
    )
