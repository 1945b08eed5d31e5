"""Evaluation sweeps: plan the grid, skip finished episodes, run the rest on a backend.

Everything the user can get wrong (a checkpoint path, a task or suite name, an initial-state
range, a policy server that does not answer) is checked while planning, before any episode runs.
A policy may also be a policy server (ws://HOST:PORT, `robopolicy.eval.remote_policy`): its run is
identified by the server's metadata, and its episodes run through the same loop. Work is cut into units
(`robopolicy.eval.work_units`): one run (checkpoint × settings), one task, a list of (initial state,
seed). The backends (local worker processes, the vector env, Ray) run them through the one episode
loop and write each episode to the store as it finishes.

Several evaluators may run the same sweep on one results file at once: each claims an episode
before running it, so each episode runs once. When its own work is done, an evaluator waits for the
episodes that others are still running, and runs those whose evaluator stopped (its claims died),
so that every evaluator ends with the complete grid in the store.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.remote_policy import connect_remote, is_remote
from robopolicy.eval.results_store import EpisodeKey, ResultsStore, Worker
from robopolicy.eval.sweep_config import SweepConfig
from robopolicy.eval.work_units import WorkUnit

_WAIT_POLL_S = 1.0  # how often an evaluator that is done looks at the episodes others are running


@dataclass(frozen=True)
class SweepPlan:
    units: list[WorkUnit]
    skipped: int  # episodes already finished in the store
    total: int  # episodes in the grid


def checkpoint_steps(config: SweepConfig) -> list[str]:
    """Step folders of every checkpoint in the sweep (policy servers as given), in order, without duplicates."""
    from robopolicy.train.checkpoint import resolve_checkpoint

    found: list[str] = []
    for path in config.checkpoints:
        if is_remote(path):
            found.append(path)
            continue
        directory, step = resolve_checkpoint(path)
        found.append(str(directory / str(step)))
    for run in config.run_dirs:
        directory, _ = resolve_checkpoint(run)
        steps = sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())
        found.extend(str(directory / str(s)) for s in steps)
    return list(dict.fromkeys(found))


def sweep_tasks(config: SweepConfig) -> list[tuple[str, str]]:
    """(suite, task) pairs: every task of every suite, then the named tasks (suite '')."""
    pairs: list[tuple[str, str]] = []
    if config.suites:
        try:
            from robopolicy.tasks.suites import suite_tasks
        except ImportError:
            raise UserError(f"suite {config.suites[0]!r}: this installation has no task suites") from None

        for suite in config.suites:
            pairs.extend((suite, t) for t in suite_tasks(suite))
    pairs.extend(("", t) for t in config.tasks)
    return list(dict.fromkeys(pairs))


def _init_state_ids(task: str, spec: str) -> list[int]:
    from robopolicy.eval.eval_config import parse_index_range
    from robopolicy.sim import load_init_states
    from robopolicy.tasks.spec import load_task_spec

    load_task_spec(task)  # an unknown task (or a broken spec) fails here, naming its file
    try:
        return parse_index_range(spec, len(load_init_states(task)))
    except ValueError as e:
        raise UserError(f"init_states of task {task!r}: {e}") from e


@dataclass(frozen=True)
class SweepRun:
    """One run of the grid: a policy under one of the settings, as the results store keys it."""

    policy: str  # what the units load: a checkpoint step folder or a policy server's address
    policy_id: str  # the store's `policy`: the step folder, or the server's address and policy
    step: int
    settings: ExecutionSettings  # what the episodes run under (a server's execution for a remote one)
    config_hash: str


def sweep_runs(config: SweepConfig) -> list[SweepRun]:
    """Every (policy, settings) run of the sweep, each checkpoint's metadata (or server) checked first."""
    from robopolicy.eval.action_selector import check_execution
    from robopolicy.train.checkpoint import load_meta
    from robopolicy.train.loaded_policy import policy_config_from_meta

    runs: list[SweepRun] = []
    for policy in checkpoint_steps(config):
        if is_remote(policy):
            remote = connect_remote(policy, config.obs_mapping)
            for settings in config.settings:
                used = remote.settings(settings)
                runs.append(SweepRun(policy, remote.policy_id, remote.step, used, remote.config_hash(used)))
            continue
        _, step, meta = load_meta(policy)  # a broken checkpoint fails here, before any work
        try:
            policy_config = policy_config_from_meta(meta)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{policy}: checkpoint metadata is missing or invalid ({e})") from e
        for settings in config.settings:
            check_execution(policy_config, settings, policy)
            runs.append(SweepRun(policy, policy, step, settings, settings.config_hash()))
    return runs


def plan_sweep(config: SweepConfig) -> SweepPlan:
    """Validate the grid, register its runs in the store and list the unfinished episodes as units."""
    runs = sweep_runs(config)
    tasks = sweep_tasks(config)
    ids = {task: _init_state_ids(task, config.init_states) for _, task in tasks}
    db = str(Path(config.db).resolve())
    video_dir = str(Path(db).parent / "videos")
    units: list[WorkUnit] = []
    skipped = total = 0
    with ResultsStore(db) as store:
        for run in runs:
            run_id = store.register_run(run.policy_id, run.step, run.settings.to_dict(), run.config_hash)
            done = store.finished(run_id)
            for suite, task in tasks:
                grid = [(i, s) for i in ids[task] for s in config.seeds]
                todo = [(i, s) for i, s in grid if EpisodeKey(task, i, s) not in done]
                total += len(grid)
                skipped += len(grid) - len(todo)
                per_unit = min(config.episodes_per_unit, math.ceil(len(todo) / max(config.workers, 1)) or 1)
                for k in range(0, len(todo), per_unit):
                    units.append(
                        WorkUnit(
                            db=db,
                            run_id=run_id,
                            policy=run.policy,
                            settings=run.settings.to_dict(),
                            obs_mapping=config.obs_mapping,
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
    rest = plan
    while rest.units:
        _run_backend(config, rest.units, report)
        rest = plan_sweep(config)
        waiting = _running_elsewhere(config, rest.units)
        if rest.units and waiting:
            report(f"waiting for {waiting} episodes that other evaluators are running")
        while rest.units and waiting:
            time.sleep(_WAIT_POLL_S)
            rest = plan_sweep(config)
            waiting = _running_elsewhere(config, rest.units)
        if rest.units:  # claims of evaluators that stopped: run those episodes here
            report(
                f"{sum(len(u.episodes) for u in rest.units)} episodes left by stopped evaluators; running them"
            )
    return plan


def _running_elsewhere(config: SweepConfig, units: list[WorkUnit]) -> int:
    """How many of the units' episodes other evaluators are running under live claims."""
    me = Worker.this_process()
    with ResultsStore(config.db) as store:
        busy = {run: store.running_elsewhere(run, me) for run in {u.run_id for u in units}}
    return sum(len(set(u.episode_keys()) & busy[u.run_id]) for u in units)


def _run_backend(config: SweepConfig, units: list[WorkUnit], report: Callable[[str], None]) -> None:
    db = str(Path(config.db).resolve())
    if config.backend == "ray":
        from robopolicy.eval.ray_backend import run_ray

        run_ray(units, db, report, config.ray_address, config.ray_num_cpus, config.ray_num_gpus)
    elif config.backend == "vector":
        from robopolicy.eval.vector_backend import run_vectorized

        run_vectorized(units, db, config.num_envs, report)
    else:
        from robopolicy.eval.local_backend import run_local

        run_local(units, db, config.workers, report, config.single_threaded_workers)
