"""The local sweep backend: at most `workers` spawned processes at a time, one unit each.

Each worker loads its unit's policy and runs the unit's episodes on one env in its own process (the
episode loop with an in-process env), claiming each episode in the store before running it and
recording it when it ends. A worker that dies (segfault, out of memory, SIGKILL) gets the episodes it
had claimed recorded as failures with reason `worker_crash`, and the rest of its unit goes back into
the queue; the sweep continues. With 0 workers the units run in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker
from robopolicy.eval.work_units import StoreSink, WorkUnit, run_unit

_SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker_main(unit_json: str, single_threaded: bool = False) -> None:
    """Entry point of a spawned worker: run one unit, writing to the store. Exit status 1 on error."""
    if single_threaded:  # before anything imports jax in this fresh process
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_SINGLE_THREAD_XLA}".strip()
    unit = WorkUnit.from_json(unit_json)
    try:
        with ResultsStore(unit.db) as store:
            run_unit(unit, StoreSink(store))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _remaining(store: ResultsStore, unit: WorkUnit) -> WorkUnit | None:
    done = store.finished(unit.run_id)
    rest = tuple((i, s) for i, s in unit.episodes if EpisodeKey(unit.task, i, s) not in done)
    return WorkUnit(**{**asdict(unit), "episodes": rest}) if rest else None


def _record_crash(store: ResultsStore, unit: WorkUnit, pid: int, exitcode: int | None) -> WorkUnit | None:
    """Turn a dead worker's claimed episodes into failures; return what is left of its unit."""
    reason = f"worker_crash: worker exited with code {exitcode}"
    me = Worker.this_process()
    dead = Worker(pid, me.host)
    crashed = [k for run, k, _ in store.running_of_worker(dead) if run == unit.run_id]
    rest = _remaining(store, unit)
    if not crashed and rest is not None:
        # It died before starting an episode (e.g. while loading): retrying would die the same way.
        # Its episodes fail here, those that no other evaluator is running.
        crashed = [k for k in rest.episode_keys() if store.claim(unit.run_id, k, unit.suite, me)]
        rest = None
    for key in crashed:
        store.record(
            unit.run_id,
            EpisodeRecord(key.task, key.init_state_id, key.seed, False, 0, reason, 0.0, suite=unit.suite),
            me,
        )
    return _remaining(store, unit) if rest is not None else None


def run_local(
    units: list[WorkUnit], db: str, workers: int, report: Callable[[str], None], single_threaded: bool = False
) -> None:
    """Run units in at most `workers` spawned processes (0: in this process)."""
    if workers == 0:
        with ResultsStore(db) as store:
            sink = StoreSink(store)
            for n, unit in enumerate(units, 1):
                run_unit(unit, sink)
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
