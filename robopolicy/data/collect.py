"""`robopolicy collect`: scripted-expert demonstrations → an RLDS dataset.

`--suite NAME --demos-per-task N` collects every task of a suite into one dataset; each episode
carries its task name and instruction.

Episode k starts from `sample_init_state(seed + k)`, a stream disjoint from the task's fixed
evaluation states, so evaluation on those states is held out. Only successful demonstrations are
kept; a failed attempt moves on to the next seed (and is counted).

With `workers > 1`, expert episodes run in that many spawned processes, each with its own env, a few
seeds ahead of the writer; episodes are still kept in seed order, so the dataset does not depend on
the number of workers.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.errors import UserError
from robopolicy.sim import TabletopEnv, run_expert_episode
from robopolicy.tasks.spec import TaskSpec, load_task_spec
from robopolicy.tasks.suites import suite_tasks


@dataclass(frozen=True)
class CollectConfig:
    """Collect scripted demonstrations of one task.

    Attributes:
        task: task name (a task folder on the task search path: --tasks-dir, ROBOPOLICY_TASK_PATH, envs/);
            'TASK+oracle' keeps a memory task's cue lit all episode (the oracle arm, docs/tasks.md).
        num_episodes: successful demonstrations to keep.
        out: output folder; the RLDS dataset is written below it.
        image_size: square camera resolution in pixels.
        cameras: cameras to record.
        seed: first collection seed; episode attempts use seed, seed+1, ...
        noise_std: Gaussian noise (normalized action units) added to executed arm actions while the
            clean expert action is recorded; a little makes cloned policies recover from drift.
        max_failures: give up after this many failed expert attempts (per task).
        suite: collect every task of this suite (see `robopolicy suites`) instead of `task`.
        demos_per_task: with `suite`, successful demonstrations per task (0: use num_episodes).
        tasks: with `suite`, only these of its tasks (empty: all of them).
        workers: processes that run expert episodes (0: one per CPU core; 1: this process only). Each
            renders its own cameras, so collection scales with cores until the writer is the bottleneck.
    """

    task: str = "cube_on_plate"
    num_episodes: int = 50
    out: str = "runs/collect"
    image_size: int = 128
    cameras: tuple[str, ...] = ("agentview", "wrist")
    seed: int = 0
    noise_std: float = 0.0
    max_failures: int = 20
    suite: str = ""
    demos_per_task: int = 0
    tasks: tuple[str, ...] = ()
    workers: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"CollectConfig: workers must be >= 0, got {self.workers}")
        if self.demos_per_task < 0:
            raise ValueError(f"CollectConfig: demos_per_task must be >= 0, got {self.demos_per_task}")
        if self.num_episodes < 1:
            raise ValueError(f"CollectConfig: num_episodes must be >= 1, got {self.num_episodes}")
        if self.noise_std < 0 or self.max_failures < 0:
            raise ValueError("CollectConfig: noise_std and max_failures must be >= 0")
        if self.tasks and not self.suite:
            raise ValueError("CollectConfig: tasks selects tasks of a suite; set suite as well")


@dataclass(frozen=True)
class CollectResult:
    dataset_dir: Path
    episodes: int
    failures: int
    steps: int
    seconds: float


def collect(config: CollectConfig, progress: bool = True) -> CollectResult:
    out = Path(config.out)
    raw_dir = out / "raw"
    if config.suite:
        tasks = suite_tasks(config.suite)
        if config.tasks:
            unknown = [t for t in config.tasks if t not in tasks]
            if unknown:
                raise UserError(f"collect: {', '.join(unknown)} not in suite {config.suite!r}")
            tasks = [t for t in tasks if t in config.tasks]
        per_task = config.demos_per_task or config.num_episodes
    else:
        tasks, per_task = [config.task], config.num_episodes
    for task in tasks:
        load_task_spec(task)  # a bad task name or spec fails here, before any progress output
    kept, failures, total_steps = 0, 0, 0
    t0 = time.perf_counter()
    label = config.suite or config.task
    bar = tqdm(total=per_task * len(tasks), desc=f"collect {label}", unit="demo", disable=not progress)
    try:
        for task in tasks:
            task_kept, task_failures, steps = _collect_task(task, per_task, kept, raw_dir, config, bar)
            kept += task_kept
            failures += task_failures
            total_steps += steps
    finally:
        bar.close()
    dataset_dir = build_rlds_dataset(
        raw_dir,
        out,
        config_name=f"{label}_{config.image_size}px",
        cameras=tuple(config.cameras),
        image_shape=(config.image_size, config.image_size),
        state_dim=TabletopEnv.state_dim,
        action_dim=TabletopEnv.action_dim,
        object_state_dim=max(_object_state_dim(task) for task in tasks),
    )
    return CollectResult(dataset_dir, kept, failures, total_steps, time.perf_counter() - t0)


def _object_state_dim(task: str) -> int:
    """Width of the task's `object_state` (7 per object body); a dataset pads to its widest task's."""
    spec = load_task_spec(task)
    articulated = sum(o.kind.articulated for o in spec.objects)  # and their moving part
    return 7 * (len(spec.objects) + articulated)


def _collect_task(
    task: str, num: int, first_id: int, raw_dir: Path, config: CollectConfig, bar: tqdm
) -> tuple[int, int, int]:
    """Write `num` successful demos of `task` with episode ids from `first_id`: (kept, failures, steps)."""
    spec = load_task_spec(task)
    kept, failures, total_steps = 0, 0, 0
    rollouts = _expert_rollouts(task, config, _worker_count(config.workers, num))
    try:
        for seed, rollout in rollouts:
            if not rollout["success"]:
                failures += 1
                if failures > config.max_failures:
                    raise UserError(
                        f"task {task!r}: the expert failed {failures} times (last seed {seed}); "
                        f"kept {first_id + kept} demos in {raw_dir}"
                    )
                continue
            write_raw_episode(raw_dir, _to_episode(rollout, spec, config, first_id + kept, seed))
            kept += 1
            total_steps += int(rollout["num_steps"])
            bar.update(1)
            bar.set_postfix(task=task, steps=total_steps, failed=failures)
            if kept == num:
                break
    finally:
        rollouts.close()
    return kept, failures, total_steps


def _worker_count(workers: int, num: int) -> int:
    if workers == 0:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(workers, num))


def _expert_rollouts(task: str, config: CollectConfig, workers: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seed, expert rollout) for seeds config.seed, config.seed + 1, ..., in that order, without end."""
    seeds = itertools.count(config.seed)
    if workers == 1:
        env = TabletopEnv(task=task, image_size=config.image_size, cameras=config.cameras)
        try:
            for seed in seeds:
                yield seed, run_expert_episode(env, seed=seed, noise_std=config.noise_std, noise_seed=seed)
        finally:
            env.close()
        return
    # spawn, not fork: a forked child would inherit this process's GL context and jax threads.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker_env,
        initargs=(task, config.image_size, tuple(config.cameras)),
    )
    # Two episodes in flight per worker keep every worker busy while the writer takes them in order.
    pending: deque[tuple[int, Future[dict[str, Any]]]] = deque()
    try:
        for seed in seeds:
            pending.append((seed, pool.submit(_worker_rollout, seed, config.noise_std)))
            if len(pending) >= 2 * workers:
                done_seed, future = pending.popleft()
                yield done_seed, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER_ENV: TabletopEnv | None = None


def _start_worker_env(task: str, image_size: int, cameras: tuple[str, ...]) -> None:
    global _WORKER_ENV
    _WORKER_ENV = TabletopEnv(task=task, image_size=image_size, cameras=cameras)


def _worker_rollout(seed: int, noise_std: float) -> dict[str, Any]:
    assert _WORKER_ENV is not None, "the pool initializer builds the env"
    return run_expert_episode(_WORKER_ENV, seed=seed, noise_std=noise_std, noise_seed=seed)


def _to_episode(rollout: dict, spec: TaskSpec, config: CollectConfig, episode_id: int, seed: int) -> Episode:
    num_steps = int(rollout["num_steps"])
    observations = rollout["observations"][:num_steps]  # the final observation has no action
    return Episode(
        frames={cam: np.stack([o[cam] for o in observations]) for cam in config.cameras},
        state=np.stack([o["state"] for o in observations]).astype(np.float32),
        action=np.asarray(rollout["actions"], np.float32),
        reward=np.asarray(rollout["rewards"], np.float32),
        task=spec.label,  # a variant's own name (`TASK+oracle`), so its demos are never taken for TASK's
        instruction=spec.instruction,
        episode_id=episode_id,
        seed=seed,
        init_state_id=-1,
        success=bool(rollout["success"]),
        object_state=np.asarray(rollout["object_states"][:num_steps], np.float32),
    )


def describe(result: CollectResult) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
