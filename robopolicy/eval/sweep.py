"""Evaluation sweeps: plan the grid, skip finished episodes, run the rest in worker processes.

Everything the user can get wrong (a checkpoint path, a task or suite name, an initial-state
range) is checked while planning, before any episode runs. Work is cut into *units*: one run
(checkpoint × settings), one task, a list of (initial state, seed). A worker loads the unit's policy
once and writes each episode to the store as it finishes. Units travel to workers as JSON text.

Local backend: at most `workers` spawned processes at a time, one per unit. A worker that dies
(segfault, out of memory, SIGKILL) gets the episodes it was running recorded as failures with
reason `worker_crash`, and the rest of its unit goes back into the queue; the sweep continues.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore
from robopolicy.eval.sweep_config import SweepConfig


@dataclass(frozen=True)
class WorkUnit:
    """Episodes of one run on one task. `episodes`: (initial-state id, seed); `video_ids`: states to film."""

    db: str
    run_id: int
    policy: str
    settings: dict[str, Any]
    suite: str
    task: str
    episodes: tuple[tuple[int, int], ...]
    video_ids: tuple[int, ...]
    video_dir: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkUnit:
        d = json.loads(text)
        d["episodes"] = tuple(tuple(e) for e in d["episodes"])
        d["video_ids"] = tuple(d["video_ids"])
        return cls(**d)

    def episode_keys(self) -> list[EpisodeKey]:
        return [EpisodeKey(self.task, i, s) for i, s in self.episodes]


@dataclass(frozen=True)
class SweepPlan:
    units: list[WorkUnit]
    skipped: int  # episodes already finished in the store
    total: int  # episodes in the grid


def checkpoint_steps(config: SweepConfig) -> list[str]:
    """Step folders of every checkpoint in the sweep, in order, without duplicates."""
    from robopolicy.train.checkpoint import resolve_checkpoint

    found: list[str] = []
    for path in config.checkpoints:
        directory, step = resolve_checkpoint(path)
        found.append(str((directory / str(step)).resolve()))
    for run in config.run_dirs:
        directory, _ = resolve_checkpoint(run)
        steps = sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())
        found.extend(str((directory / str(s)).resolve()) for s in steps)
    return list(dict.fromkeys(found))


def sweep_tasks(config: SweepConfig) -> list[tuple[str, str]]:
    """(suite, task) pairs: every task of every suite, then the named tasks (suite '')."""
    pairs: list[tuple[str, str]] = []
    if config.suites:
        try:
            from robopolicy.sim.suites import suite_tasks
        except ImportError:
            raise UserError(f"suite {config.suites[0]!r}: this installation has no task suites") from None

        for suite in config.suites:
            pairs.extend((suite, t) for t in suite_tasks(suite))
    pairs.extend(("", t) for t in config.tasks)
    return list(dict.fromkeys(pairs))


def _init_state_ids(task: str, spec: str) -> list[int]:
    from robopolicy.eval.eval_config import parse_index_range
    from robopolicy.sim import load_init_states
    from robopolicy.sim.scene_spec import load_spec

    load_spec(task)  # an unknown task (or a broken spec, plain or composed) fails here, naming its file
    try:
        return parse_index_range(spec, len(load_init_states(task)))
    except ValueError as e:
        raise UserError(f"init_states of task {task!r}: {e}") from e


def plan_sweep(config: SweepConfig) -> SweepPlan:
    """Validate the grid, register its runs in the store and list the unfinished episodes as units."""
    from robopolicy.train.checkpoint import load_meta

    policies = checkpoint_steps(config)
    metas = {p: load_meta(p) for p in policies}  # a broken checkpoint fails here, before any work
    from robopolicy.eval.action_selector import check_execution
    from robopolicy.train.loaded_policy import policy_config_from_meta

    for policy, (_, _, meta) in metas.items():
        try:
            policy_config = policy_config_from_meta(meta)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{policy}: checkpoint metadata is missing or invalid ({e})") from e
        for settings in config.settings:
            check_execution(policy_config, settings, policy)
    tasks = sweep_tasks(config)
    ids = {task: _init_state_ids(task, config.init_states) for _, task in tasks}
    db = str(Path(config.db).resolve())
    video_dir = str(Path(db).parent / "videos")
    units: list[WorkUnit] = []
    skipped = total = 0
    with ResultsStore(db) as store:
        for policy in policies:
            _, step, _ = metas[policy]
            for settings in config.settings:
                run_id = store.register_run(policy, step, settings.to_dict(), settings.config_hash())
                done = store.finished(run_id)
                for suite, task in tasks:
                    grid = [(i, s) for i in ids[task] for s in config.seeds]
                    todo = [(i, s) for i, s in grid if EpisodeKey(task, i, s) not in done]
                    total += len(grid)
                    skipped += len(grid) - len(todo)
                    per_unit = min(
                        config.episodes_per_unit, math.ceil(len(todo) / max(config.workers, 1)) or 1
                    )
                    for k in range(0, len(todo), per_unit):
                        units.append(
                            WorkUnit(
                                db=db,
                                run_id=run_id,
                                policy=policy,
                                settings=settings.to_dict(),
                                suite=suite,
                                task=task,
                                episodes=tuple(todo[k : k + per_unit]),
                                video_ids=tuple(ids[task][: config.video_episodes]),
                                video_dir=video_dir,
                            )
                        )
    if config.blind:
        random.Random(config.blind_seed).shuffle(units)
    return SweepPlan(units, skipped, total)


# ----- running a unit (in a worker process, or in this one) -----

_POLICIES: dict[
    str, Any
] = {}  # per-process cache: a worker that gets several units of a policy loads it once


def run_unit(unit: WorkUnit, sink: Callable[[str, EpisodeKey, EpisodeRecord | None], None]) -> None:
    """Run a unit's episodes; `sink(event, key, record)` gets ('start', key, None) and ('done', key, record)."""
    from robopolicy.eval.episode_runner import run_stored_episode
    from robopolicy.eval.policy_runner import PolicyRunner
    from robopolicy.sim import TabletopEnv, load_init_states
    from robopolicy.train.loaded_policy import load_policy

    if unit.policy not in _POLICIES:
        _POLICIES[unit.policy] = load_policy(unit.policy)
    policy = _POLICIES[unit.policy]
    settings = ExecutionSettings.from_dict(unit.settings)
    runner = PolicyRunner(policy, execution=settings)
    env = TabletopEnv(task=unit.task, image_size=policy.config.image_size, cameras=policy.config.cameras)
    try:
        init_states = load_init_states(unit.task, env)
        for key in unit.episode_keys():
            sink("start", key, None)
            video = None
            if key.init_state_id in unit.video_ids:
                video = (
                    Path(unit.video_dir) / f"run{unit.run_id}_{key.task}_{key.init_state_id}_{key.seed}.mp4"
                )
            record = run_stored_episode(
                env, runner, init_states[key.init_state_id], key, settings, suite=unit.suite, video_path=video
            )
            sink("done", key, record)
    finally:
        env.close()


def _store_sink(
    store: ResultsStore, unit: WorkUnit
) -> Callable[[str, EpisodeKey, EpisodeRecord | None], None]:
    pid = os.getpid()

    def sink(event: str, key: EpisodeKey, record: EpisodeRecord | None) -> None:
        if event == "start":
            store.mark_running(unit.run_id, key, unit.suite, pid)
        elif record is not None:
            store.record(unit.run_id, record, pid)

    return sink


_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker_main(unit_json: str, single_threaded: bool = False) -> None:
    """Entry point of a spawned worker: run one unit, writing to the store. Exit status 1 on error."""
    if single_threaded:  # before anything imports jax in this fresh process
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_SINGLE_THREAD_XLA}".strip()
    unit = WorkUnit.from_json(unit_json)
    try:
        with ResultsStore(unit.db) as store:
            run_unit(unit, _store_sink(store, unit))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


# ----- local backend -----


def _remaining(store: ResultsStore, unit: WorkUnit) -> WorkUnit | None:
    done = store.finished(unit.run_id)
    rest = tuple((i, s) for i, s in unit.episodes if EpisodeKey(unit.task, i, s) not in done)
    return WorkUnit(**{**asdict(unit), "episodes": rest}) if rest else None


def _record_crash(store: ResultsStore, unit: WorkUnit, pid: int, exitcode: int | None) -> WorkUnit | None:
    """Turn a dead worker's in-flight episodes into failures; return what is left of its unit."""
    reason = f"worker_crash: worker exited with code {exitcode}"
    crashed = [k for run, k, _ in store.running_of_worker(pid) if run == unit.run_id]
    rest = _remaining(store, unit)
    if not crashed and rest is not None:
        # It died before starting an episode (e.g. while loading): retrying would die the same way.
        crashed, rest = rest.episode_keys(), None
    for key in crashed:
        store.record(
            unit.run_id,
            EpisodeRecord(key.task, key.init_state_id, key.seed, False, 0, reason, 0.0, suite=unit.suite),
        )
    return _remaining(store, unit) if rest is not None else None


def run_local(
    units: list[WorkUnit], db: str, workers: int, report: Callable[[str], None], single_threaded: bool = False
) -> None:
    """Run units in at most `workers` spawned processes (0: in this process)."""
    if workers == 0:
        with ResultsStore(db) as store:
            for n, unit in enumerate(units, 1):
                run_unit(unit, _store_sink(store, unit))
                report(f"unit {n}/{len(units)} done")
        return
    ctx = multiprocessing.get_context("spawn")
    queue = list(reversed(units))
    alive: list[tuple[Any, WorkUnit]] = []
    finished = 0
    with ResultsStore(db) as store:
        while queue or alive:
            while queue and len(alive) < workers:
                unit = queue.pop()
                proc = ctx.Process(target=worker_main, args=(unit.to_json(), single_threaded), daemon=True)
                proc.start()
                alive.append((proc, unit))
            time.sleep(0.2)
            for proc, unit in list(alive):
                if proc.is_alive():
                    continue
                proc.join()
                alive.remove((proc, unit))
                if proc.exitcode != 0:
                    rest = _record_crash(store, unit, proc.pid, proc.exitcode)
                    report(
                        f"a worker exited with code {proc.exitcode}; its episodes in flight are recorded as failures"
                    )
                    if rest is not None:
                        queue.append(rest)
                        continue
                finished += 1
                report(f"unit {finished}/{len(units)} done")


def run_sweep(config: SweepConfig, report: Callable[[str], None] | None = None) -> SweepPlan:
    """Plan and run a sweep; returns the plan (what ran and what was skipped)."""
    report = report or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if config.backend == "ray":
        from robopolicy.eval.ray_backend import import_ray

        import_ray()  # a missing extra fails before any work
    plan = plan_sweep(config)
    report(
        f"{plan.total} episodes in the grid, {plan.skipped} already in {config.db}, "
        f"{plan.total - plan.skipped} to run in {len(plan.units)} units"
        + (f" (blind order, seed {config.blind_seed})" if config.blind else "")
    )
    if not plan.units:
        return plan
    if config.backend == "ray":
        from robopolicy.eval.ray_backend import run_ray

        run_ray(plan.units, str(Path(config.db).resolve()), config.ray_address, report)
    elif config.backend == "vector":
        from robopolicy.eval.vector_runner import run_vectorized

        run_vectorized(plan.units, str(Path(config.db).resolve()), config.num_envs, report)
    else:
        run_local(
            plan.units, str(Path(config.db).resolve()), config.workers, report, config.single_threaded_workers
        )
    return plan
