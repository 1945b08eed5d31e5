"""Closed-loop evaluation of a policy on a task's fixed initial states."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.eval.stats import wilson_interval
from robopolicy.eval.video import compose_frame, with_status, write_mp4
from robopolicy.sim import TabletopEnv


@dataclass(frozen=True)
class EpisodeResult:
    init_state_id: int
    success: bool
    steps: int
    wall_seconds: float
    failure_reason: str | None


@dataclass
class EvalSummary:
    task: str
    instruction: str
    checkpoint: str
    checkpoint_step: int
    episodes: list[EpisodeResult]
    timings: dict[str, float] = field(default_factory=dict)
    video: str | None = None

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.episodes) if self.episodes else float("nan")

    def to_json(self) -> dict[str, Any]:
        low, high = wilson_interval(self.successes, len(self.episodes))
        return {
            "task": self.task,
            "instruction": self.instruction,
            "checkpoint": self.checkpoint,
            "checkpoint_step": self.checkpoint_step,
            "num_episodes": len(self.episodes),
            "successes": self.successes,
            "success_rate": self.success_rate,
            "wilson95": [low, high],
            "timings": self.timings,
            "video": self.video,
            "episodes": [asdict(e) for e in self.episodes],
        }


def failure_reason(info: dict[str, Any], success: bool) -> str | None:
    """A short reason for a failed episode, from the final predicates."""
    if success:
        return None
    if info.get("sim_error"):
        return f"sim_error: {info['sim_error']}"
    if info.get("cube_on_plate"):
        return "timeout: cube on plate but still held"
    if info.get("cube_grasped") or info.get("cube_lifted"):
        return "timeout: cube held but not placed"
    return "timeout: cube never grasped"


def run_episode(
    env: TabletopEnv,
    runner: PolicyRunner,
    init_state: np.ndarray,
    max_steps: int,
    frames: list[np.ndarray] | None = None,
    video_scale: int = 2,
) -> tuple[bool, int, dict[str, Any]]:
    """One episode from `init_state`. Appends composed video frames to `frames` when given."""
    obs, info = env.reset(init_state=init_state)
    runner.reset()
    cameras = env.config.cameras
    success, steps = False, 0
    while steps < max_steps:
        obs, _, terminated, truncated, info = env.step(runner.act(obs))
        steps += 1
        success = bool(info["success"])
        if frames is not None:
            frames.append(with_status(compose_frame(obs, cameras, video_scale), None))
        if terminated or truncated:
            break
    if frames is not None and frames:
        last = with_status(compose_frame(obs, cameras, video_scale), success)
        frames.extend([last] * 10)  # hold the verdict on screen for half a second
    return success, steps, info


def evaluate(
    runner: PolicyRunner,
    env: TabletopEnv,
    init_states: np.ndarray,
    init_state_ids: list[int],
    *,
    checkpoint: str,
    max_steps: int | None = None,
    video_path: Path | None = None,
    video_episodes: int = 4,
    progress: bool = True,
) -> EvalSummary:
    """Run one episode per given initial state; trial i uses initial state `init_state_ids[i]`."""
    max_steps = max_steps or env.max_steps
    results: list[EpisodeResult] = []
    frames: list[np.ndarray] = []
    bar = tqdm(init_state_ids, desc="eval", unit="ep", disable=not progress, dynamic_ncols=True)
    t_start = time.perf_counter()
    for n, state_id in enumerate(bar):
        t0 = time.perf_counter()
        record = frames if (video_path is not None and n < video_episodes) else None
        success, steps, info = run_episode(env, runner, init_states[state_id], max_steps, record)
        results.append(
            EpisodeResult(state_id, success, steps, time.perf_counter() - t0, failure_reason(info, success))
        )
        done = sum(r.success for r in results)
        bar.set_postfix(success=f"{done}/{len(results)}")
    total = time.perf_counter() - t_start
    video = str(write_mp4(video_path, frames)) if video_path is not None and frames else None
    return EvalSummary(
        task=env.config.task,
        instruction=env.instruction,
        checkpoint=checkpoint,
        checkpoint_step=runner.policy.step,
        episodes=results,
        timings={
            "total_seconds": total,
            "policy_seconds": runner.inference_seconds,
            "policy_calls": float(runner.num_inferences),
        },
        video=video,
    )
