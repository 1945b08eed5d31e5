"""Ray backend of `robopolicy sweep --backend ray` (install the `[ray]` extra).

Ray tasks run units on cluster workers, which need not share a file system with the store: this
process claims a unit's episodes in the store before submitting it (under its own pid and host),
each task returns its episode records and the encoded videos of its filmed episodes, and this
process writes them, the videos where the local backends would (next to the store). Each task
reserves `ray_num_cpus` CPUs and `ray_num_gpus` GPUs (Ray hides from a task the GPUs it did not
reserve). A task that raises, or whose worker dies, has its unit's episodes recorded as failures with
reason `worker_crash: <exception type>: <message>`, and this process's log names the unit and the
reason; the sweep goes on. Workers' own output (stderr, tracebacks) reaches this process's log.

User task and mapping folders (`ROBOPOLICY_TASK_PATH`, which `--tasks-dir` extends,
`ROBOPOLICY_MAPPING_PATH`, `ROBOPOLICY_OBS_MAPPING_PATH`) and a policy server's token
(`ROBOPOLICY_TOKEN`) travel to the tasks in their runtime environment; on a cluster the folders
must exist at the same paths on every node (a shared file system, or the same checkout).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from robopolicy.errors import UserError
from robopolicy.eval.episode_loop import EpisodeItem, first_line, write_video
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker
from robopolicy.eval.video import encode_mp4
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
        self.episodes: list[tuple[dict[str, Any], bytes | None]] = []

    def claim(self, item: EpisodeItem) -> bool:
        return True

    def done(self, item: EpisodeItem, record: EpisodeRecord, frames: list[np.ndarray] | None) -> None:
        self.episodes.append((asdict(record), encode_mp4(frames) if frames else None))


def ray_unit(unit_json: str) -> dict[str, Any]:
    """Run a unit on a Ray worker. Returns `episodes`: (record as a dict, mp4 bytes of a filmed
    episode or None) pairs, and `resources`: what Ray assigned to the task ({"CPU": 1.0, ...})."""
    import ray

    records = _Records()
    run_unit(WorkUnit.from_json(unit_json), records)
    return {"episodes": records.episodes, "resources": ray.get_runtime_context().get_assigned_resources()}


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'robopolicy[ray]'") from None
    return ray


def task_failure(error: BaseException) -> str:
    """The failure reason of a unit whose task raised or whose worker died: the exception's type
    and message (a task's own exception, which Ray wraps in `RayTaskError`), on one line."""
    cause = getattr(error, "cause", None)
    error = cause if isinstance(cause, BaseException) else error
    message = " ".join(str(error).split())
    return first_line(f"worker_crash: {type(error).__name__}" + (f": {message}" if message else ""))


def run_ray(
    units: list[WorkUnit],
    db: str,
    report: Callable[[str], None],
    address: str = "",
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
) -> None:
    """Run units as Ray tasks of `num_cpus` CPUs and `num_gpus` GPUs each, on the cluster at
    `address` (empty: start or join a local one), writing their episodes and videos to the store `db`."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=True)
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    remote = ray.remote(ray_unit).options(
        max_retries=0, num_cpus=num_cpus, num_gpus=num_gpus, runtime_env={"env_vars": env_vars}
    )
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
            items = {item.key: item for item in unit.items()}
            finished += 1
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                reason = task_failure(e)
                for k in unit.episode_keys():
                    record = EpisodeRecord(
                        k.task, k.init_state_id, k.seed, False, 0, reason, 0.0, suite=unit.suite
                    )
                    store.record(unit.run_id, record, me)
                report(
                    f"unit {finished}/{total} failed (run {unit.run_id}, task {unit.task}, init states "
                    f"{sorted({i for i, _ in unit.episodes})}): {reason}; its episodes are recorded as failures"
                )
                continue
            for fields, video in result["episodes"]:
                record = EpisodeRecord(**fields)
                item = items[EpisodeKey(record.task, record.init_state_id, record.seed)]
                store.record(unit.run_id, write_video(item, record, video), me)
            used = ", ".join(f"{k} {v:g}" for k, v in sorted(result["resources"].items()))
            report(f"unit {finished}/{total} done ({used})")
