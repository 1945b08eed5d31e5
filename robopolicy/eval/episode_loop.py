"""The episode loop: every evaluation episode runs here, on a vector env of one or more envs.

`run_episodes` drives the envs of a vector env with one selector slot per env: worker
processes (`robopolicy.sim.make_vector`, the vector backend) or envs in this process
(`robopolicy.sim.in_process_env.make_in_process`: the sequential runner is this loop with one env).
The selector is an `ActionSelector` running a loaded policy, or a `RemoteSelector`
(robopolicy.eval.remote_policy) asking a policy server; the loop is the same.
Each env is reset to its next episode as soon as its episode ends; every env step makes at most one
batched policy call for the envs that need a new chunk.

An episode: reset to its fixed initial state, `settle_steps` no-op steps (not counted), then the
policy acts until success, the env ends the episode or the step cap (the settings' cap for the
suite, never above the task's own, at which the env truncates). Before an episode starts it is
claimed through the sink (`EpisodeSink.claim`), so that evaluators sharing a results store never run
an episode twice; when it ends the sink gets its record and, if it is filmed, its frames.

Envs of one vector env are bound to a task each, so tasks are scheduled in *waves*: a wave binds each
env to a task with work left (a task with more episodes than its share gets several envs), runs until
those tasks are done, and closes its envs. A suite of T tasks on N envs takes about ⌈T/N⌉ waves.

Faults end only their episode, with a failure reason: a physics blow-up (the env's `sim_error`); a
policy exception or a non-finite action (`policy_error`, for the episodes planned in that call); a
dead worker process (`worker_crash`, the vector env restarts it); an exception inside an env
(`sim_error`; the others' step results are lost with the exception, so their episodes start again,
which gives the same episodes since sampling is seeded per episode). Timeouts read
"timeout: <the task's reason> (cap N steps)". A policy that cannot be asked at all (a policy server
that is gone: `PolicyUnavailable`) stops the run instead, leaving its episodes to a rerun.

Time split per episode (policy steps only; reset and settle count towards wall time alone):
`policy_seconds` is its share of the batched inference calls; with in-process envs
`physics_seconds` and `render_seconds` are the env step without and with its observation; with
worker processes, which render and simulate together, `physics_seconds` is the wall time of the
vector steps it took part in and `render_seconds` is 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robopolicy.eval.episode_outcome import episode_failure_reason
from robopolicy.eval.execution import NOOP_ACTION, ExecutionSettings
from robopolicy.eval.remote_policy import PolicyUnavailable
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord
from robopolicy.eval.video import compose_frame, with_caption, with_status, with_verdict
from robopolicy.sim.vector_env import WorkerError

VIDEO_SCALE = 2  # video frames upscale the policy's camera images by this integer factor


@dataclass(frozen=True)
class EpisodeItem:
    """One episode to run: which run and suite it belongs to, its key, and where its video goes."""

    run_id: int
    suite: str
    key: EpisodeKey
    video: Path | None = None


class EpisodeSink(Protocol):
    """Where the loop's episodes are claimed and delivered."""

    def claim(self, item: EpisodeItem) -> bool:
        """Whether this process may run `item` now (False: it is done or running elsewhere)."""
        ...

    def done(self, item: EpisodeItem, record: EpisodeRecord, frames: list[np.ndarray] | None) -> None:
        """A finished episode: its record and, if it is filmed, its video frames."""
        ...


MakeEnvs = Callable[..., Any]  # (tasks, image_size=, cameras=, autoreset_mode=) → a vector env


class Selector(Protocol):
    """What the loop asks of the policy: one slot per env (`robopolicy.eval.action_selector.ActionSelector`
    and its remote counterpart)."""

    num_slots: int

    @property
    def cameras(self) -> tuple[str, ...]: ...

    @property
    def image_size(self) -> int: ...

    def reset(self, slot: int, seed: int | None = None, instruction: str | None = None) -> None: ...

    def release(self, slot: int) -> None: ...

    def act(self, obs: dict[str, np.ndarray], active: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def selection_log(self, slot: int) -> list[dict[str, Any]] | None:
        """Self-verification's choices in the slot's episode so far (None without it)."""
        ...


def episode_seed(key: EpisodeKey) -> int:
    """The policy's sampling seed for an episode: a function of the key only, so order does not matter."""
    text = f"{key.task}/{key.init_state_id}/{key.seed}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def schedule_wave(pending: dict[str, deque[Any]], num_envs: int) -> list[str]:
    """The task of each env for the next wave: the tasks with most work left, one env each; spare
    envs go, one at a time, to the task with the most episodes left per env. No more envs than
    episodes left."""
    tasks = sorted((t for t in pending if pending[t]), key=lambda t: -len(pending[t]))[:num_envs]
    share = {t: 1 for t in tasks}
    for _ in range(min(num_envs, sum(len(q) for q in pending.values())) - len(tasks)):
        busiest = max(tasks, key=lambda t: len(pending[t]) / share[t])
        share[busiest] += 1
    return [t for t in tasks for _ in range(share[t])]


def write_video(item: EpisodeItem, record: EpisodeRecord, video: bytes | None) -> EpisodeRecord:
    """Write a filmed episode's encoded video (the mp4 file's bytes, `robopolicy.eval.video.encode_mp4`)
    to `item.video`; the record, with the video's path if written. Every sweep backend writes its
    videos here, on the machine of the results store: a Ray worker's come back to the driver as bytes."""
    if item.video is None or not video:
        return record
    item.video.parent.mkdir(parents=True, exist_ok=True)
    item.video.write_bytes(video)
    return dataclasses.replace(record, video_path=str(item.video))


def run_episodes(
    pending: dict[str, deque[EpisodeItem]],
    selector: Selector,
    settings: ExecutionSettings,
    sink: EpisodeSink,
    make_envs: MakeEnvs,
    report: Callable[[str], None] | None = None,
) -> None:
    """Run the pending episodes (per task, in order) on vector envs of at most `selector.num_slots`
    envs, built wave by wave with `make_envs`; episodes the sink does not let this process claim
    are skipped."""
    report = report or (lambda msg: None)
    total = sum(len(q) for q in pending.values())
    claims = _Claims(sink)
    while any(pending.values()):
        tasks = schedule_wave(pending, selector.num_slots)
        first = [claims.next(pending[task]) for task in tasks]
        items = [item for item in first if item is not None]
        if not items:
            continue
        envs = make_envs(
            [item.key.task for item in items],
            image_size=selector.image_size,
            cameras=selector.cameras,
            autoreset_mode="Disabled",
        )
        try:
            _Wave(envs, items, pending, selector, settings, claims, report).run()
        finally:
            envs.close()
        done = total - sum(len(q) for q in pending.values()) - claims.skipped
        elsewhere = f", {claims.skipped} left to other evaluators" if claims.skipped else ""
        report(f"{done}/{total} episodes done{elsewhere} ({', '.join(dict.fromkeys(tasks))})")


class _Claims:
    """Takes episodes off the queues for this process through the sink's claims, counting the skipped."""

    def __init__(self, sink: EpisodeSink) -> None:
        self.sink = sink
        self.skipped = 0

    def next(self, queue: deque[EpisodeItem]) -> EpisodeItem | None:
        """The next episode of `queue` this process may run; the ones it may not leave the queue."""
        while queue:
            item = queue.popleft()
            if self.sink.claim(item):
                return item
            self.skipped += 1
        return None


@dataclass
class _Live:
    """An episode in progress in one env."""

    item: EpisodeItem
    cap: int
    settle_left: int
    t_start: float = field(default_factory=time.perf_counter)
    steps: int = 0
    success: bool = False
    policy_seconds: float = 0.0
    physics_seconds: float = 0.0
    render_seconds: float = 0.0
    frames: list[np.ndarray] | None = None
    last_obs: dict[str, np.ndarray] | None = None


_ENV_ERROR = re.compile(r"^env (\d+) \([^)]*\): (.*)$", re.MULTILINE)  # WorkerError's per-env lines


def _info_at(info: dict[str, Any], name: str, i: int) -> Any:
    """Env i's value of `name` in a vector env's batched info dict (None when absent)."""
    mask = info.get(f"_{name}")
    if name not in info or mask is None or not mask[i]:
        return None
    return info[name][i]


def _env_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Env i's entries of a batched info dict."""
    return {k: info[k][i] for k in info if not k.startswith("_") and _info_at(info, k, i) is not None}


def first_line(text: str) -> str:
    """The first line of `text`, at most 300 characters: a failure reason for the results store."""
    return text.splitlines()[0][:300] if text else text


class _Wave:
    """Runs episodes of the wave's tasks on one vector env (env i bound to the task of items[i])
    until none of those tasks has an episode left."""

    def __init__(
        self,
        envs: Any,
        items: list[EpisodeItem],
        pending: dict[str, deque[EpisodeItem]],
        selector: Selector,
        settings: ExecutionSettings,
        claims: _Claims,
        report: Callable[[str], None],
    ) -> None:
        self.envs, self.items, self.pending = envs, items, pending
        self.selector, self.settings, self.claims, self.report = selector, settings, claims, report
        self.tasks = [item.key.task for item in items]
        self.cameras = selector.cameras
        self.instructions = envs.instructions
        self.task_caps = envs.max_steps
        self.live: list[_Live | None] = [None] * len(items)

    def run(self) -> None:
        obs = self._start(dict(enumerate(self.items)), None)
        while obs is not None and any(x is not None for x in self.live):
            obs = self._step(obs)

    def _next_items(self, slots: list[int]) -> dict[int, EpisodeItem | None]:
        return {i: self.claims.next(self.pending[self.tasks[i]]) for i in slots}

    def _start(
        self, items: dict[int, EpisodeItem | None], obs: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray] | None:
        """Reset env i to episode items[i] (none: it idles); returns the batched observation, None
        when no env has an episode."""
        n = len(self.tasks)
        mask = np.zeros(n, bool)
        ids: list[int | None] = [None] * n
        for i, item in items.items():
            self.live[i] = None
            self.selector.release(i)
            if item is None:
                continue
            task_cap = self.task_caps[i]
            self.live[i] = _Live(
                item,
                cap=min(self.settings.step_cap(item.suite, task_cap), task_cap),
                settle_left=self.settings.settle_steps,
                frames=[] if item.video is not None else None,
            )
            self.selector.reset(i, episode_seed(item.key), self.instructions[i])
            mask[i], ids[i] = True, item.key.init_state_id
        if not mask.any():
            return obs if any(x is not None for x in self.live) else None
        new_obs, info = self.envs.reset(options={"reset_mask": mask, "init_state_id": ids})
        for i in map(int, np.flatnonzero(mask)):
            crash = _info_at(info, "worker_crash", i)
            if crash:
                self.report(f"env {i} ({self.tasks[i]}) crashed during reset and was restarted: {crash}")
            live = self.live[i]
            assert live is not None
            live.last_obs = {k: v[i] for k, v in new_obs.items()}
        return new_obs  # fresh observations for the reset envs, unchanged ones for the others

    def _step(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        n = len(self.tasks)
        actions = np.tile(np.asarray(NOOP_ACTION, np.float32), (n, 1))
        acting = np.array([x is not None and x.settle_left == 0 for x in self.live])
        finished: dict[int, str | None] = {}
        if acting.any():
            try:
                planned, seconds = self.selector.act(obs, acting)
            except PolicyUnavailable:
                raise
            except Exception as e:  # a policy bug must not end the run: it fails these episodes
                reason = first_line(f"policy_error: {type(e).__name__}: {e}")
                finished.update({i: reason for i in map(int, np.flatnonzero(acting))})
            else:
                for i in map(int, np.flatnonzero(acting)):
                    live = self.live[i]
                    assert live is not None
                    live.policy_seconds += float(seconds[i])
                    if np.isfinite(planned[i]).all():
                        actions[i] = planned[i]
                    else:  # the env is not given it; the episode ends here
                        finished[i] = "policy_error: invalid action: not finite"
        if all(live is None or i in finished for i, live in enumerate(self.live)):
            return self._finish_and_restart(finished, obs)  # no episode needs the env step
        t0 = time.perf_counter()
        try:
            obs, _, terminated, truncated, info = self.envs.step(actions)
        except WorkerError as err:
            return self._after_env_exception(err, finished, obs)
        wall = time.perf_counter() - t0
        split = getattr(self.envs, "step_times", None)  # per-env (physics, render) of in-process envs
        for i, live in enumerate(self.live):
            if live is None or i in finished:
                continue
            done = bool(terminated[i] or truncated[i])
            crash = _info_at(info, "worker_crash", i)
            sim_error = _info_at(info, "sim_error", i)
            live.last_obs = {k: v[i] for k, v in obs.items()}
            if crash:
                finished[i] = first_line(f"worker_crash: {crash}")
                continue
            if live.settle_left > 0:
                live.settle_left -= 1
                if sim_error or done:
                    finished[i] = episode_failure_reason(_env_info(info, i), False)
                continue
            live.steps += 1
            if split is not None:
                live.physics_seconds += float(split[0][i])
                live.render_seconds += float(split[1][i])
            else:
                live.physics_seconds += wall
            live.success = bool(_info_at(info, "success", i))
            if live.frames is not None:
                live.frames.append(with_status(compose_frame(live.last_obs, self.cameras, VIDEO_SCALE), None))
            if done or live.steps >= live.cap or sim_error:
                reason = episode_failure_reason(_env_info(info, i), live.success)
                if not live.success and live.steps >= live.cap and reason and reason.startswith("timeout"):
                    reason = f"{reason} (cap {live.cap} steps)"
                finished[i] = reason
        return self._finish_and_restart(finished, obs) if finished else obs

    def _after_env_exception(
        self, err: WorkerError, finished: dict[int, str | None], obs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """An env raised (the simulator failed): that episode fails with a `sim_error`. The step's
        results of the other envs are lost with the exception, so their episodes start again from
        their initial states (sampling is seeded per episode, so the rerun is the same episode)."""
        failing = {int(m[0]): m[1] for m in _ENV_ERROR.findall(str(err))}
        for i, live in enumerate(self.live):
            if live is None or i in finished:
                continue
            if i in failing:
                finished[i] = first_line(f"sim_error: {failing[i]}")
            else:
                self.pending[self.tasks[i]].appendleft(live.item)
                self.live[i] = None
        for i, reason in finished.items():
            self._record(i, reason)
        return self._start(self._next_items(list(range(len(self.tasks)))), obs)

    def _finish_and_restart(
        self, finished: dict[int, str | None], obs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        for i, reason in finished.items():
            self._record(i, reason)
        return self._start(self._next_items(sorted(finished)), obs)

    def _record(self, i: int, reason: str | None) -> None:
        live = self.live[i]
        assert live is not None
        success = live.success and reason is None
        frames = None
        if live.frames is not None and live.last_obs is not None:
            last = with_status(compose_frame(live.last_obs, self.cameras, VIDEO_SCALE), success)
            held = live.frames + [last] * 10  # hold the verdict on screen for half a second
            frames = [with_verdict(with_caption(f, self.instructions[i]), success) for f in held]
        key = live.item.key
        record = EpisodeRecord(
            task=key.task,
            init_state_id=key.init_state_id,
            seed=key.seed,
            success=success,
            steps=live.steps,
            failure_reason=None if success else reason,
            wall_seconds=time.perf_counter() - live.t_start,
            suite=live.item.suite,
            policy_seconds=live.policy_seconds,
            physics_seconds=live.physics_seconds,
            render_seconds=live.render_seconds,
            instruction=self.instructions[i],
            self_verification=self.selector.selection_log(i),
        )
        self.claims.sink.done(live.item, record, frames)
