"""Ray backend of `robopolicy sweep --backend ray` (install the `[ray]` extra).

Ray tasks run units on cluster workers, which need not share a file system with the store: this
process claims a unit's episodes in the store before submitting it (under its own pid and host),
each task returns its episode records as JSON text, and this process writes them. A task whose
worker dies has its unit's episodes recorded as failures with reason `worker_crash`; the sweep goes on.

User task and mapping folders (`ROBOPOLICY_TASK_PATH`, which `--tasks-dir` extends,
`ROBOPOLICY_MAPPING_PATH`, `ROBOPOLICY_OBS_MAPPING_PATH`) and a policy server's token
(`ROBOPOLICY_TOKEN`) travel to the tasks in their runtime environment; on a cluster the folders
must exist at the same paths on every node (a shared file system, or the same checkout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from robopolicy.errors import UserError
from robopolicy.eval.episode_loop import EpisodeItem, write_video
from robopolicy.eval.results_store import EpisodeRecord, ResultsStore, Worker
from robopolicy.eval.work_units import WorkUnit, run_unit

# Environment variables a Ray task needs to resolve names the way this process does.
FORWARDED_ENV = (
    "ROBOPOLICY_TASK_PATH",
    "ROBOPOLICY_MAPPING_PATH",
    "ROBOPOLICY_OBS_MAPPING_PATH",
    "ROBOPOLICY_TOKEN",
    "MUJOCO_GL",
)


class _Records:
    """The episodes of a unit run on a Ray worker, kept to be returned (their claims are the driver's)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def claim(self, item: EpisodeItem) -> bool:
        return True

    def done(self, item: EpisodeItem, record: EpisodeRecord, frames: list[np.ndarray] | None) -> None:
        self.records.append(asdict(write_video(item, record, frames)))


def ray_unit(unit_json: str) -> str:
    """Run a unit on a Ray worker; returns a JSON list of its episode records."""
    records = _Records()
    run_unit(WorkUnit.from_json(unit_json), records)
    return json.dumps(records.records)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'robopolicy[ray]'") from None
    return ray


def run_ray(units: list[WorkUnit], db: str, address: str, report: Callable[[str], None]) -> None:
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    remote = ray.remote(max_retries=0)(ray_unit).options(runtime_env={"env_vars": env_vars})
    me = Worker.this_process()
    finished = 0
    with ResultsStore(db) as store:
        pending = {}
        for unit in units:
            mine = tuple(
                (k.init_state_id, k.seed)
                for k in unit.episode_keys()
                if store.claim(unit.run_id, k, unit.suite, me)
            )
            if mine:
                claimed = replace(unit, episodes=mine)
                pending[remote.remote(claimed.to_json())] = claimed
        total = len(pending)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ready[0])
            try:
                records = [EpisodeRecord(**r) for r in json.loads(ray.get(ready[0]))]
            except ray.exceptions.RayError as e:
                reason = f"worker_crash: {type(e).__name__}"
                records = [
                    EpisodeRecord(k.task, k.init_state_id, k.seed, False, 0, reason, 0.0, suite=unit.suite)
                    for k in unit.episode_keys()
                ]
                report(f"a Ray worker failed ({type(e).__name__}); its unit is recorded as failures")
            for record in records:
                store.record(unit.run_id, record, me)
            finished += 1
            report(f"unit {finished}/{total} done")
