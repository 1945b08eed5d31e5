"""`robopolicy results import`: episode logs (robopolicy/client/episode_log.py), written by evaluations
that run where the results store cannot be imported (the LIBERO client), into a results database.

Each line becomes the store's run (`register_run`, created once) and its episode (`record`), so
importing a log twice, or a log that grew since, leaves one row per episode, the latest line's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robopolicy.client.episode_log import EpisodeLogError, read_episode_log
from robopolicy.errors import UserError
from robopolicy.eval.results_store import EpisodeRecord, ResultsStore

_FIELDS = {f.name for f in dataclasses.fields(EpisodeRecord)}


def import_episode_log(log: str | Path, db: str | Path) -> tuple[int, int]:
    """Record every episode of `log` in the results database `db`; (runs, episodes) imported."""
    if not Path(log).is_file():
        raise UserError(f"{log}: no such episode log")
    runs: dict[tuple[str, int, str], int] = {}
    count = 0
    with ResultsStore(db) as store:
        try:
            for number, run, fields in read_episode_log(log):
                unknown = sorted(set(fields) - _FIELDS)
                if unknown:
                    raise UserError(f"{log}:{number}: unknown episode fields {unknown}")
                try:
                    episode = EpisodeRecord(**fields)
                except TypeError as e:
                    raise UserError(f"{log}:{number}: bad episode ({e})") from None
                key = (run.policy, run.checkpoint_step, run.config_hash)
                if key not in runs:
                    runs[key] = store.register_run(*key[:2], run.settings, run.config_hash)
                store.record(runs[key], episode)
                count += 1
        except EpisodeLogError as e:
            raise UserError(str(e)) from None
    return len(runs), count
