"""Scripted-expert episodes in LIBERO: their success on LIBERO's initial states (`expert-check`,
without cameras), and demonstrations recorded as RLDS (`collect`, with cameras).

Episodes start as evaluation episodes do (LIBERO's initial state, settle steps with a no-op) and
end at LIBERO's success check or the suite's step cap; the settle steps are not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robopolicy_libero.expert import PickPlaceExpert
from robopolicy_libero.libero_env import PHYSICS_ERRORS, LiberoEnv, PhysicsError, RenderOptions
from robopolicy_libero.observation import eef_state, upright
from robopolicy_libero.rlds import stage_episode, write_rlds
from robopolicy_libero.suites import LiberoTask, init_state_ids, suite_tasks


@dataclass(frozen=True)
class ExpertEpisode:
    success: bool
    steps: int
    failure: str | None
    frames: dict[str, Any] | None  # the recorded observations and actions, when recording


def expert_episode(env: LiberoEnv, init_state_id: int, record: bool = False) -> ExpertEpisode:
    """One scripted-expert episode from LIBERO's initial state `init_state_id`."""
    images, wrists, states, actions = [], [], [], []
    steps, success, failure = 0, False, None
    try:
        obs = env.start(init_state_id)
        expert = PickPlaceExpert(env)
        while steps < env.task.max_steps and not success:
            action = expert.act(obs)
            if record:
                images.append(upright(obs["agentview_image"]))
                wrists.append(upright(obs["robot0_eye_in_hand_image"]))
                states.append(eef_state(obs))
                actions.append(action.astype(np.float32))
            obs, success, _ = env.step(action)
            steps += 1
        if not success:
            failure = f"timeout in phase {expert.phase}"
    except (*PHYSICS_ERRORS, PhysicsError) as e:
        failure = f"sim_error: {type(e).__name__}: {e}"
    frames = None
    if record:
        frames = {
            "image": np.stack(images),
            "wrist_image": np.stack(wrists),
            "state": states,
            "action": actions,
        }
    return ExpertEpisode(success, steps, failure, frames)


@dataclass(frozen=True)
class TaskResult:
    task: LiberoTask
    successes: int
    episodes: int
    mean_steps: float
    steps_per_second: float
    failures: dict[int, str]


def expert_check(
    suite: str, tasks: str, init_states: str, say: Callable[[str], None] = print
) -> list[TaskResult]:
    """The expert's success on each chosen task's initial states, without cameras."""
    chosen = suite_tasks(suite, tasks)
    ids = init_state_ids(init_states, min(len(t.init_states) for t in chosen))
    results = []
    for task in chosen:
        env = LiberoEnv(task, RenderOptions(cameras=False))
        started, outcomes = time.perf_counter(), {}
        try:
            for i in ids:
                outcomes[i] = expert_episode(env, i)
        finally:
            env.close()
        seconds = time.perf_counter() - started
        steps = [e.steps for e in outcomes.values()]
        result = TaskResult(
            task,
            sum(e.success for e in outcomes.values()),
            len(ids),
            float(np.mean(steps)),
            sum(steps) / seconds,
            {i: e.failure for i, e in outcomes.items() if e.failure},
        )
        say(
            f"{suite} {task.index} {task.name}: {result.successes}/{result.episodes}, "
            f"{result.mean_steps:.0f} steps on average, {result.steps_per_second:.1f} steps/s"
            + (f"; failed: {result.failures}" if result.failures else "")
        )
        results.append(result)
    return results


def collect(
    suite: str,
    tasks: str,
    init_states: str,
    out: Path,
    name: str,
    render: RenderOptions,
    say: Callable[[str], None] = print,
) -> Path:
    """Record the expert's successful episodes on the chosen tasks and states as an RLDS dataset
    `out/<name>/1.0.0`; failed episodes are left out and counted. Staged episodes are kept across
    interruptions and not recorded again."""
    chosen = suite_tasks(suite, tasks)
    ids = init_state_ids(init_states, min(len(t.init_states) for t in chosen))
    raw = out / "raw"
    for task in chosen:
        todo = [i for i in ids if not (raw / f"{suite}_{task.index:02d}_{i:03d}.npz").exists()]
        if not todo:
            continue
        env = LiberoEnv(task, render)
        kept = 0
        try:
            for i in todo:
                episode = expert_episode(env, i, record=True)
                if episode.success and episode.frames is not None:
                    source = f"{suite}/{task.name}/init_state_{i}"
                    frames = {**episode.frames, "instruction": task.instruction, "file_path": source}
                    stage_episode(raw, f"{suite}_{task.index:02d}_{i:03d}", frames)
                    kept += 1
        finally:
            env.close()
        say(f"{suite} {task.index} {task.name}: {kept}/{len(todo)} episodes recorded")
    return write_rlds(out, name, render.camera_size)
