"""The vectorized backend: one policy process drives N env worker processes (`make_vector`).

Work units of one run (checkpoint × settings) are pooled; the policy is loaded and compiled once
in this process, and every env step makes at most one batched inference call for all envs that
need a new chunk (`ActionSelector`). Each finished episode is written to the store at once, so a
killed run loses only the N episodes in flight and a rerun skips the rest.

Envs of one vector env are bound to a task each (the env's worker builds that task's scene), so
tasks are scheduled in *waves*: a wave binds each env to a task with work left (a task with more
episodes than its share gets several envs), runs until those tasks are done, and closes its workers.
A suite of T tasks on N envs thus takes about ⌈T/N⌉ waves, each paying one worker start.

Faults: a physics blow-up ends its episode with the env's `sim_error`; a policy exception or a
non-finite action fails the episodes that were planned in that call; a dead worker
(`info["worker_crash"]`) fails its episode with reason `worker_crash: …`, the vector env restarts
that worker and the run goes on; an exception inside an env (the simulator failed) fails its
episode with a `sim_error` and restarts the others' episodes. Time split per episode: `policy_seconds` is its share of the
batched inference calls; `physics_seconds` is the wall time of the vector steps it took part in
(physics and rendering run together in the workers, so `render_seconds` is 0 here).
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.episode_outcome import episode_failure_reason
from robopolicy.eval.episode_runner import episode_seed
from robopolicy.eval.execution import NOOP_ACTION, ExecutionSettings
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore
from robopolicy.eval.sweep import WorkUnit
from robopolicy.eval.video import compose_frame, with_caption, with_status, with_verdict, write_mp4
from robopolicy.sim.vector_env import WorkerError


@dataclass(frozen=True)
class _Item:
    """One episode to run: which run, suite, key, and where its video goes (None: no video)."""

    run_id: int
    suite: str
    key: EpisodeKey
    video: Path | None


@dataclass
class _Live:
    """An episode in progress in one env."""

    item: _Item
    cap: int
    settle_left: int
    t_start: float = field(default_factory=time.perf_counter)
    steps: int = 0
    success: bool = False
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    frames: list[np.ndarray] | None = None
    last_obs: dict[str, np.ndarray] | None = None


_ENV_ERROR = re.compile(r"^env (\d+) \([^)]*\): (.*)$", re.MULTILINE)  # WorkerError's per-env lines


def _info_at(info: dict[str, Any], name: str, i: int) -> Any:
    """Env i's value of `name` in a vector env's batched info dict (None when absent)."""
    mask = info.get(f"_{name}")
    if name not in info or mask is None or not mask[i]:
        return None
    return info[name][i]


def _first_line(text: str) -> str:
    return text.splitlines()[0][:300] if text else text


def schedule_wave(pending: dict[str, deque[_Item]], num_envs: int) -> list[str]:
    """The task of each env for the next wave: the tasks with most work left, one env each; spare
    envs go, one at a time, to the task with the most episodes left per env. No more envs than
    episodes left."""
    tasks = sorted((t for t in pending if pending[t]), key=lambda t: -len(pending[t]))[:num_envs]
    share = {t: 1 for t in tasks}
    for _ in range(min(num_envs, sum(len(q) for q in pending.values())) - len(tasks)):
        busiest = max(tasks, key=lambda t: len(pending[t]) / share[t])
        share[busiest] += 1
    return [t for t in tasks for _ in range(share[t])]


class _Wave:
    """Runs pending episodes of the wave's tasks on one vector env until none is left."""

    def __init__(
        self,
        envs: Any,
        tasks: list[str],
        pending: dict[str, deque[_Item]],
        policy: ActionSelector,
        settings: ExecutionSettings,
        store: ResultsStore,
        report: Callable[[str], None],
    ) -> None:
        self.envs, self.tasks, self.pending = envs, tasks, pending
        self.policy, self.settings, self.store, self.report = policy, settings, store, report
        self.cameras = policy.policy.config.cameras
        self.instructions = envs.instructions
        self.task_caps = envs.max_steps
        n = len(tasks)
        self.live: list[_Live | None] = [None] * n
        self.ended = np.zeros(n, bool)  # the env's own episode is over (terminated or truncated)
        self.pid = os.getpid()

    def run(self) -> None:
        obs = self._start(list(range(len(self.tasks))), None)
        while obs is not None and any(x is not None for x in self.live):
            obs = self._step(obs)

    def _start(self, slots: list[int], obs: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
        """Reset `slots` to their next episodes; returns the batched observation (None if none left)."""
        n = len(self.tasks)
        mask = np.zeros(n, bool)
        ids: list[int | None] = [None] * n
        for i in slots:
            queue = self.pending[self.tasks[i]]
            self.live[i] = None
            self.policy.release(i)
            if not queue:
                continue
            item = queue.popleft()
            self.store.mark_running(item.run_id, item.key, item.suite, self.pid)
            self.live[i] = _Live(
                item,
                cap=min(self.settings.step_cap(item.suite, self.task_caps[i]), self.task_caps[i]),
                settle_left=self.settings.settle_steps,
                frames=[] if item.video is not None else None,
            )
            self.policy.reset(i, episode_seed(item.key), self.instructions[i])
            mask[i], ids[i] = True, item.key.init_state_id
        if not mask.any():
            return obs
        new_obs, info = self.envs.reset(options={"reset_mask": mask, "init_state_id": ids})
        self.ended[mask] = False
        for i in map(int, np.flatnonzero(mask)):
            crash = _info_at(info, "worker_crash", i)
            if crash:
                self.report(f"env {i} ({self.tasks[i]}) crashed during reset and was restarted: {crash}")
            live = self.live[i]
            assert live is not None
            live.last_obs = {k: v[i] for k, v in new_obs.items()}
        return new_obs  # the workers' latest observations: fresh ones for reset envs, unchanged for others

    def _step(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        n = len(self.tasks)
        actions = np.tile(np.asarray(NOOP_ACTION, np.float32), (n, 1))
        acting = np.array([x is not None and x.settle_left == 0 for x in self.live])
        finished: dict[int, str | None] = {}
        if acting.any():
            try:
                planned, seconds = self.policy.act(obs, acting)
            except Exception as e:  # a policy bug must not end the run: it fails these episodes
                reason = _first_line(f"policy_error: {type(e).__name__}: {e}")
                for i in map(int, np.flatnonzero(acting)):
                    finished[i] = reason
            else:
                for i in map(int, np.flatnonzero(acting)):
                    live = self.live[i]
                    assert live is not None
                    live.policy_seconds += float(seconds[i])
                    if np.isfinite(planned[i]).all():
                        actions[i] = planned[i]
                    else:  # the env takes a no-op instead; the episode ends here
                        finished[i] = "policy_error: invalid action: not finite"
        t0 = time.perf_counter()
        try:
            obs, _, terminated, truncated, info = self.envs.step(actions)
        except WorkerError as err:
            return self._after_env_exception(err, finished, obs)
        dt = time.perf_counter() - t0
        for i, live in enumerate(self.live):
            if live is None or i in finished:
                continue
            done = bool(terminated[i] or truncated[i])
            self.ended[i] = done
            crash = _info_at(info, "worker_crash", i)
            sim_error = _info_at(info, "sim_error", i)
            live.last_obs = {k: v[i] for k, v in obs.items()}
            if crash:
                finished[i] = _first_line(f"worker_crash: {crash}")
                continue
            if live.settle_left > 0:
                live.settle_left -= 1
                if sim_error or done:
                    finished[i] = episode_failure_reason(_env_info(info, i), False)
                continue
            live.steps += 1
            live.env_seconds += dt
            live.success = bool(_info_at(info, "success", i))
            if live.frames is not None:
                live.frames.append(with_status(compose_frame(live.last_obs, self.cameras, 2), None))
            if done or live.steps >= live.cap or sim_error:
                reason = episode_failure_reason(_env_info(info, i), live.success)
                if not live.success and live.steps >= live.cap and reason and reason.startswith("timeout"):
                    reason = f"{reason} (cap {live.cap} steps)"
                finished[i] = reason
        return self._finish_and_restart(finished, obs) if finished else obs

    def _after_env_exception(
        self, err: WorkerError, finished: dict[int, str | None], obs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """An env raised inside its worker (the simulator failed): that episode fails with a
        `sim_error`. The step's results of the other envs are lost with the exception, so their
        episodes start again from their initial states (sampling is seeded per episode, so the rerun
        is the same episode)."""
        failing = {int(m[0]): m[1] for m in _ENV_ERROR.findall(str(err))}
        for i, live in enumerate(self.live):
            if live is None or i in finished:
                continue
            if i in failing:
                finished[i] = _first_line(f"sim_error: {failing[i]}")
            else:
                self.pending[self.tasks[i]].appendleft(live.item)
                self.live[i] = None
        for i, reason in finished.items():
            live = self.live[i]
            assert live is not None
            self._record(i, live, reason)
        return self._start(list(range(len(self.tasks))), obs)

    def _finish_and_restart(
        self, finished: dict[int, str | None], obs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        for i, reason in finished.items():
            live = self.live[i]
            assert live is not None
            self._record(i, live, reason)
        return self._start(sorted(finished), obs)

    def _record(self, i: int, live: _Live, reason: str | None) -> None:
        video = None
        if live.item.video is not None and live.frames and live.last_obs is not None:
            last = with_status(compose_frame(live.last_obs, self.cameras, 2), live.success)
            frames = live.frames + [last] * 10  # hold the verdict on screen for half a second
            frames = [with_verdict(with_caption(f, self.instructions[i]), live.success) for f in frames]
            video = str(write_mp4(live.item.video, frames))
        key = live.item.key
        self.store.record(
            live.item.run_id,
            EpisodeRecord(
                task=key.task,
                init_state_id=key.init_state_id,
                seed=key.seed,
                success=live.success and reason is None,
                steps=live.steps,
                failure_reason=None if live.success and reason is None else reason,
                wall_seconds=time.perf_counter() - live.t_start,
                suite=live.item.suite,
                policy_seconds=live.policy_seconds,
                physics_seconds=live.env_seconds,
                render_seconds=0.0,
                video_path=video,
                instruction=self.instructions[i],
            ),
            self.pid,
        )


def _env_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Env i's entries of a batched info dict."""
    return {k: info[k][i] for k in info if not k.startswith("_") and _info_at(info, k, i) is not None}


def _items(units: list[WorkUnit]) -> dict[str, deque[_Item]]:
    pending: dict[str, deque[_Item]] = {}
    for unit in units:
        for key in unit.episode_keys():
            video = None
            if key.init_state_id in unit.video_ids:
                video = (
                    Path(unit.video_dir) / f"run{unit.run_id}_{key.task}_{key.init_state_id}_{key.seed}.mp4"
                )
            pending.setdefault(unit.task, deque()).append(_Item(unit.run_id, unit.suite, key, video))
    return pending


def run_vectorized(
    units: list[WorkUnit],
    db: str,
    num_envs: int,
    report: Callable[[str], None],
    make_envs: Callable[..., Any] | None = None,
) -> None:
    """Run units with one policy process and `num_envs` env workers; runs (policy × settings) in turn.

    `make_envs(tasks, **env_kwargs)` builds the vector env of a wave (default `robopolicy.sim.make_vector`).
    """
    from robopolicy.train.loaded_policy import load_policy

    if make_envs is None:
        from robopolicy.sim import make_vector

        make_envs = make_vector
    runs: dict[tuple[str, str], list[WorkUnit]] = {}
    for unit in units:
        runs.setdefault((unit.policy, ExecutionSettings.from_dict(unit.settings).config_hash()), []).append(
            unit
        )
    done = 0
    total = sum(len(u.episodes) for u in units)
    with ResultsStore(db) as store:
        for group in runs.values():
            loaded = load_policy(group[0].policy)
            settings = ExecutionSettings.from_dict(group[0].settings)
            pending = _items(group)
            # One batch size for every wave, so that the sampler compiles once per run.
            policy = ActionSelector(loaded, num_envs, settings)
            while any(pending.values()):
                tasks = schedule_wave(pending, num_envs)
                before = sum(len(q) for q in pending.values())
                envs = make_envs(
                    tasks,
                    image_size=loaded.config.image_size,
                    cameras=loaded.config.cameras,
                    autoreset_mode="Disabled",
                )
                try:
                    _Wave(envs, tasks, pending, policy, settings, store, report).run()
                finally:
                    envs.close()
                done += before - sum(len(q) for q in pending.values())
                report(f"{done}/{total} episodes done ({', '.join(dict.fromkeys(tasks))})")
