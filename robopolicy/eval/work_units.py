"""Units of evaluation work and running them: what the sweep plans and every backend executes.

A unit is one run (checkpoint × settings), one task and a list of (initial state, seed); it travels
to worker processes and Ray tasks as JSON text. `run_units` runs units through the one episode loop
(`robopolicy.eval.episode_loop`): per run, one policy load and one `ActionSelector` with a slot per
env, or, for a policy server, one `RemoteSelector` with a connection per env. `StoreSink` claims each
episode in the results store before it starts and records it when it ends, so evaluators sharing a
store split the work.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.episode_loop import EpisodeItem, EpisodeSink, MakeEnvs, run_episodes, write_video
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.remote_policy import RemoteSelector, connect_remote, is_remote
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker
from robopolicy.eval.video import encode_mp4
from robopolicy.train.loaded_policy import LoadedPolicy, load_policy


@dataclass(frozen=True)
class WorkUnit:
    """Episodes of one run on one task. `episodes`: (initial-state id, seed); `video_ids`: states to film;
    `obs_mapping`: for a policy server that names none, the observation mapping to send through."""

    db: str
    run_id: int
    policy: str
    settings: dict[str, Any]
    suite: str
    task: str
    episodes: tuple[tuple[int, int], ...]
    video_ids: tuple[int, ...]
    video_dir: str
    obs_mapping: str = ""

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

    def items(self) -> list[EpisodeItem]:
        """The unit's episodes for the episode loop, with the video path of those to film."""
        return [
            EpisodeItem(
                self.run_id,
                self.suite,
                key,
                Path(self.video_dir) / f"run{self.run_id}_{key.task}_{key.init_state_id}_{key.seed}.mp4"
                if key.init_state_id in self.video_ids
                else None,
            )
            for key in self.episode_keys()
        ]


class StoreSink:
    """Claims episodes in a results store for this process and records them there when they end."""

    def __init__(self, store: ResultsStore, worker: Worker | None = None) -> None:
        self.store = store
        self.worker = worker or Worker.this_process()

    def claim(self, item: EpisodeItem) -> bool:
        return self.store.claim(item.run_id, item.key, item.suite, self.worker)

    def done(self, item: EpisodeItem, record: EpisodeRecord, frames: list[np.ndarray] | None) -> None:
        video = encode_mp4(frames) if frames else None
        self.store.record(item.run_id, write_video(item, record, video), self.worker)


# Per-process cache: a worker that gets several units of a policy loads it once.
_POLICIES: dict[str, LoadedPolicy] = {}


def run_units(
    units: list[WorkUnit],
    sink: EpisodeSink,
    num_envs: int,
    make_envs: MakeEnvs,
    report: Callable[[str], None] | None = None,
) -> None:
    """Run the units' episodes on vector envs of `num_envs` envs made by `make_envs`; runs
    (policy × settings) one after another, each with one policy load and one compiled sampler."""
    runs: dict[tuple[str, str], list[WorkUnit]] = {}
    for unit in units:
        key = (unit.policy, ExecutionSettings.from_dict(unit.settings).config_hash())
        runs.setdefault(key, []).append(unit)
    for group in runs.values():
        policy = group[0].policy
        settings = ExecutionSettings.from_dict(group[0].settings)
        pending: dict[str, deque[EpisodeItem]] = {}
        for unit in group:
            pending.setdefault(unit.task, deque()).extend(unit.items())
        if is_remote(policy):
            remote = RemoteSelector(connect_remote(policy, group[0].obs_mapping), num_envs, settings)
            try:
                run_episodes(pending, remote, settings, sink, make_envs, report)
            finally:
                remote.close()
            continue
        if policy not in _POLICIES:
            _POLICIES[policy] = load_policy(policy)
        # One slot per env, the same for every wave, so that the sampler compiles once per run.
        selector = ActionSelector(_POLICIES[policy], num_envs, settings)
        run_episodes(pending, selector, settings, sink, make_envs, report)


def run_unit(unit: WorkUnit, sink: EpisodeSink) -> None:
    """Run one unit in this process, on one env (the sequential runner)."""
    from robopolicy.sim.in_process_env import make_in_process

    run_units([unit], sink, 1, make_in_process)
