"""The evaluation results store: one SQLite file with a `runs` table and an `episodes` table.

A *run* is one policy checkpoint evaluated under one set of execution settings; its key is
(policy path, checkpoint step, settings hash). An *episode* is one rollout of a run, keyed by
(run, task, initial-state id, seed), so re-running a sweep finds what is finished and skips it.

Durability: every episode is its own short transaction, committed when the episode ends, in WAL
mode. A process killed with SIGKILL therefore loses only the episodes it was running. An episode
is marked `running` when it starts; a sweep resumed after a kill re-runs such rows, while the
sweep runner turns the rows of a worker that crashed into failures with reason `worker_crash`.

Concurrency: each process opens its own connection (connections never cross processes); writers
take the lock up front (`BEGIN IMMEDIATE`) and wait up to `busy_timeout` for it, which is ample for
transactions that write one row.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    policy TEXT NOT NULL,             -- checkpoint folder the policy was loaded from
    checkpoint_step INTEGER NOT NULL,
    config_hash TEXT NOT NULL,        -- hash of the execution settings
    settings TEXT NOT NULL,           -- the execution settings as JSON
    code_version TEXT NOT NULL,       -- git commit of the evaluating code, or the package version
    created_at REAL NOT NULL,         -- unix time
    UNIQUE (policy, checkpoint_step, config_hash)
);
CREATE TABLE IF NOT EXISTS episodes (
    episode_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    suite TEXT NOT NULL,              -- suite the task was evaluated under ('' when named directly)
    task TEXT NOT NULL,
    init_state_id INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done')),
    success INTEGER,                  -- 0/1 once done
    steps INTEGER,
    failure_reason TEXT,
    wall_seconds REAL,
    policy_seconds REAL,
    physics_seconds REAL,
    render_seconds REAL,
    video_path TEXT,
    instruction TEXT,
    worker_pid INTEGER,
    updated_at REAL NOT NULL,
    UNIQUE (run_id, task, init_state_id, seed)
);
CREATE INDEX IF NOT EXISTS episodes_by_task ON episodes (task, init_state_id, seed);
"""


@dataclass(frozen=True)
class EpisodeKey:
    """Identifies one episode within a run."""

    task: str
    init_state_id: int
    seed: int


@dataclass(frozen=True)
class EpisodeRecord:
    """A finished episode. Times in seconds; video_path relative to the store's folder or absolute."""

    task: str
    init_state_id: int
    seed: int
    success: bool
    steps: int
    failure_reason: str | None
    wall_seconds: float
    suite: str = ""
    policy_seconds: float = 0.0
    physics_seconds: float = 0.0
    render_seconds: float = 0.0
    video_path: str | None = None
    instruction: str = ""


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    policy: str
    checkpoint_step: int
    config_hash: str
    settings: dict[str, Any]
    code_version: str


@functools.cache
def code_version() -> str:
    """The git commit of the code being run (with '+dirty' for local changes), else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0 and commit.stdout.strip():
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"robopolicy {version('robopolicy')}"
    except PackageNotFoundError:
        return "unknown"


class ResultsStore:
    """A connection to a results file; open one per process (and per thread)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UserError(f"{self.path}: no such results database")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE … COMMIT) below.
            self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process kill (only an OS crash can lose the last commits).
            self._db.execute("PRAGMA synchronous = NORMAL")
            # One script, one transaction: processes that open a new file at once create it once.
            self._db.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');"
                + "COMMIT;"
            )
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: not a robopolicy results database ({e})") from e
        if int(found) != SCHEMA_VERSION:
            raise UserError(f"{self.path}: results schema version {found}, this code reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ----- runs -----
    def register_run(
        self, policy: str, checkpoint_step: int, settings: dict[str, Any], config_hash: str
    ) -> int:
        """The run id of (policy, step, settings), created if new. Safe to call from many processes."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO runs (policy, checkpoint_step, config_hash, settings, code_version, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    policy,
                    checkpoint_step,
                    config_hash,
                    json.dumps(settings, sort_keys=True),
                    code_version(),
                    time.time(),
                ),
            )
            row = self._db.execute(
                "SELECT run_id FROM runs WHERE policy = ? AND checkpoint_step = ? AND config_hash = ?",
                (policy, checkpoint_step, config_hash),
            ).fetchone()
        return int(row[0])

    def runs(self) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT run_id, policy, checkpoint_step, config_hash, settings, code_version FROM runs ORDER BY run_id"
        ).fetchall()
        return [RunRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    # ----- episodes -----
    def finished(self, run_id: int) -> set[EpisodeKey]:
        """Keys of the run's episodes that are done (successful or failed)."""
        rows = self._db.execute(
            "SELECT task, init_state_id, seed FROM episodes WHERE run_id = ? AND status = 'done'", (run_id,)
        ).fetchall()
        return {EpisodeKey(*r) for r in rows}

    def mark_running(self, run_id: int, key: EpisodeKey, suite: str, worker_pid: int) -> None:
        """Record that an episode started; overwrites a `running` row left by a killed sweep."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO episodes (run_id, suite, task, init_state_id, seed, status, worker_pid, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?) "
                "ON CONFLICT (run_id, task, init_state_id, seed) DO UPDATE SET "
                "status = 'running', worker_pid = excluded.worker_pid, updated_at = excluded.updated_at "
                "WHERE status = 'running'",
                (run_id, suite, key.task, key.init_state_id, key.seed, worker_pid, time.time()),
            )

    def record(self, run_id: int, episode: EpisodeRecord, worker_pid: int = 0) -> None:
        """Store a finished episode, committed before returning."""
        values = (
            episode.suite,
            int(episode.success),
            episode.steps,
            episode.failure_reason,
            episode.wall_seconds,
            episode.policy_seconds,
            episode.physics_seconds,
            episode.render_seconds,
            episode.video_path,
            episode.instruction,
            worker_pid,
            time.time(),
        )
        with self._transaction():
            self._db.execute(
                "INSERT INTO episodes (run_id, task, init_state_id, seed, status, suite, success, steps, "
                "failure_reason, wall_seconds, policy_seconds, physics_seconds, render_seconds, video_path, "
                "instruction, worker_pid, updated_at) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, task, init_state_id, seed) DO UPDATE SET status = 'done', "
                "suite = excluded.suite, success = excluded.success, steps = excluded.steps, "
                "failure_reason = excluded.failure_reason, wall_seconds = excluded.wall_seconds, "
                "policy_seconds = excluded.policy_seconds, physics_seconds = excluded.physics_seconds, "
                "render_seconds = excluded.render_seconds, video_path = excluded.video_path, "
                "instruction = excluded.instruction, worker_pid = excluded.worker_pid, "
                "updated_at = excluded.updated_at",
                (run_id, episode.task, episode.init_state_id, episode.seed, *values),
            )

    def running_of_worker(self, worker_pid: int) -> list[tuple[int, EpisodeKey, str]]:
        """(run id, key, suite) of episodes a worker process left in `running` state."""
        rows = self._db.execute(
            "SELECT run_id, task, init_state_id, seed, suite FROM episodes WHERE status = 'running' "
            "AND worker_pid = ?",
            (worker_pid,),
        ).fetchall()
        return [(r[0], EpisodeKey(r[1], r[2], r[3]), r[4]) for r in rows]

    def episodes(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Finished episodes as dicts (columns of the episodes table), optionally of one run."""
        query = "SELECT * FROM episodes WHERE status = 'done'"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            query += " AND run_id = ?"
            args = (run_id,)
        cursor = self._db.execute(query + " ORDER BY run_id, task, init_state_id, seed", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
