"""The evaluation results store: one SQLite file with a `runs` table and an `episodes` table.

A *run* is one policy checkpoint evaluated under one set of execution settings; its key is
(policy path, checkpoint step, settings hash). An *episode* is one rollout of a run, keyed by
(run, task, initial-state id, seed), so re-running a sweep finds what is finished and skips it.

Durability: every episode is its own short transaction, committed when the episode ends, in WAL
mode. A process killed with SIGKILL therefore loses only the episodes it was running.

Claims: before an episode runs, its evaluator claims it (`claim`, one transaction): the row becomes
`running`, recording the worker's pid, host and the time. An episode that is done, or running under
a live claim of another worker, cannot be claimed, so evaluators sharing one file split the work and
run every episode once. A claim is dead, and can be taken over, when its process is gone (same host,
pid no longer running), when it is older than `CLAIM_TIMEOUT_S` (a claim from another host, or a
hung process), or when it has no host (written before claims existed). A killed evaluator thus leaves
claims that the next run takes over; the local sweep backend turns the claims of a worker that
crashed into failures with reason `worker_crash`.

Concurrency: each process opens its own connection (connections never cross processes); writers
take the lock up front (`BEGIN IMMEDIATE`) and wait up to `busy_timeout` for it, which is ample for
transactions that write one row.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError

SCHEMA_VERSION = 2  # 2: episodes.worker_host (claims); version-1 files are upgraded on opening
_BUSY_TIMEOUT_MS = 60_000
CLAIM_TIMEOUT_S = 2 * 3600.0  # a claim older than this is stale: no episode runs for two hours

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
    self_verification TEXT,           -- JSON list of self-verification's choices per plan, or NULL
    worker_pid INTEGER,
    worker_host TEXT NOT NULL DEFAULT '', -- with worker_pid, who claimed or ran the episode
    updated_at REAL NOT NULL,             -- unix time of the claim, then of the result
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
    """A finished episode. Times in seconds; video_path relative to the store's folder or absolute.

    `self_verification` (episodes run with self-verification only): one entry per plan, {"t": step,
    "chosen": candidate index, "scores": every candidate's score, "compared": past tokens compared}
    (`ActionSelector.selection_log`), so that a failure can be traced to the choices made.
    """

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
    self_verification: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Worker:
    """A process that claims and runs episodes: its pid on its host."""

    pid: int
    host: str

    @classmethod
    def this_process(cls) -> Worker:
        return cls(os.getpid(), socket.gethostname())

    def is_alive(self) -> bool:
        """Whether the process may still run: False only for a pid that no longer runs on this host."""
        if self.host != socket.gethostname():
            return True  # another host's process cannot be checked from here; claims there go stale
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, under another user
            return True
        return True


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

    def __init__(
        self, path: str | Path, create: bool = True, claim_timeout_s: float = CLAIM_TIMEOUT_S
    ) -> None:
        self.path = Path(path)
        self.claim_timeout_s = claim_timeout_s
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
            found = self._upgrade()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: not a robopolicy results database ({e})") from e
        if int(found) != SCHEMA_VERSION:
            raise UserError(f"{self.path}: results schema version {found}, this code reads {SCHEMA_VERSION}")

    def _upgrade(self) -> int:
        """Bring an older file to the current schema; the version. Version 1 gets the claims' host
        column. The nullable `self_verification` column is added to files without it and keeps the
        version: code that does not know it never names it, so it reads and writes such files alike."""
        with self._transaction():
            found = int(self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if found == 1:
                self._db.execute("ALTER TABLE episodes ADD COLUMN worker_host TEXT NOT NULL DEFAULT ''")
                self._db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
                found = 2
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(episodes)")}
            if "self_verification" not in columns:
                self._db.execute("ALTER TABLE episodes ADD COLUMN self_verification TEXT")
        return found

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

    def claim(self, run_id: int, key: EpisodeKey, suite: str, worker: Worker) -> bool:
        """Claim an episode for `worker` before running it: True if it was free (no row), claimed by
        `worker` itself or under a dead claim; False if it is done or another worker's claim is live.
        Atomic: of evaluators claiming the same episode at once, one gets it."""
        with self._transaction():
            row = self._db.execute(
                "SELECT status, worker_pid, worker_host, updated_at FROM episodes "
                "WHERE run_id = ? AND task = ? AND init_state_id = ? AND seed = ?",
                (run_id, key.task, key.init_state_id, key.seed),
            ).fetchone()
            if row is not None:
                status, pid, host, claimed_at = row
                if status == "done":
                    return False
                holder = Worker(int(pid or 0), host)
                if holder != worker and self._claim_is_live(holder, claimed_at):
                    return False
            self._db.execute(
                "INSERT INTO episodes (run_id, suite, task, init_state_id, seed, status, worker_pid, "
                "worker_host, updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (run_id, task, init_state_id, seed) DO UPDATE SET status = 'running', "
                "suite = excluded.suite, worker_pid = excluded.worker_pid, "
                "worker_host = excluded.worker_host, updated_at = excluded.updated_at",
                (run_id, suite, key.task, key.init_state_id, key.seed, worker.pid, worker.host, time.time()),
            )
        return True

    def _claim_is_live(self, holder: Worker, claimed_at: float) -> bool:
        if not holder.host or time.time() - claimed_at > self.claim_timeout_s:
            return False
        return holder.is_alive()

    def running_elsewhere(self, run_id: int, worker: Worker) -> set[EpisodeKey]:
        """Keys of the run's episodes that other workers are running under live claims."""
        rows = self._db.execute(
            "SELECT task, init_state_id, seed, worker_pid, worker_host, updated_at FROM episodes "
            "WHERE run_id = ? AND status = 'running'",
            (run_id,),
        ).fetchall()
        busy = set()
        for task, init_state_id, seed, pid, host, claimed_at in rows:
            holder = Worker(int(pid or 0), host)
            if holder != worker and self._claim_is_live(holder, claimed_at):
                busy.add(EpisodeKey(task, init_state_id, seed))
        return busy

    def record(self, run_id: int, episode: EpisodeRecord, worker: Worker | None = None) -> None:
        """Store a finished episode (run by `worker`, if known), committed before returning."""
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
            None if episode.self_verification is None else json.dumps(episode.self_verification),
            worker.pid if worker else 0,
            worker.host if worker else "",
            time.time(),
        )
        with self._transaction():
            self._db.execute(
                "INSERT INTO episodes (run_id, task, init_state_id, seed, status, suite, success, steps, "
                "failure_reason, wall_seconds, policy_seconds, physics_seconds, render_seconds, video_path, "
                "instruction, self_verification, worker_pid, worker_host, updated_at) "
                "VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, task, init_state_id, seed) DO UPDATE SET status = 'done', "
                "suite = excluded.suite, success = excluded.success, steps = excluded.steps, "
                "failure_reason = excluded.failure_reason, wall_seconds = excluded.wall_seconds, "
                "policy_seconds = excluded.policy_seconds, physics_seconds = excluded.physics_seconds, "
                "render_seconds = excluded.render_seconds, video_path = excluded.video_path, "
                "instruction = excluded.instruction, self_verification = excluded.self_verification, "
                "worker_pid = excluded.worker_pid, "
                "worker_host = excluded.worker_host, updated_at = excluded.updated_at",
                (run_id, episode.task, episode.init_state_id, episode.seed, *values),
            )

    def running_of_worker(self, worker: Worker) -> list[tuple[int, EpisodeKey, str]]:
        """(run id, key, suite) of episodes a worker process claimed and left in `running` state."""
        rows = self._db.execute(
            "SELECT run_id, task, init_state_id, seed, suite FROM episodes WHERE status = 'running' "
            "AND worker_pid = ? AND worker_host = ?",
            (worker.pid, worker.host),
        ).fetchall()
        return [(r[0], EpisodeKey(r[1], r[2], r[3]), r[4]) for r in rows]

    def episodes(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Finished episodes as dicts (columns of the episodes table, `self_verification` parsed from
        its JSON), optionally of one run."""
        query = "SELECT * FROM episodes WHERE status = 'done'"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            query += " AND run_id = ?"
            args = (run_id,)
        cursor = self._db.execute(query + " ORDER BY run_id, task, init_state_id, seed", args)
        names = [d[0] for d in cursor.description]
        episodes = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for e in episodes:
            if e["self_verification"] is not None:
                e["self_verification"] = json.loads(e["self_verification"])
        return episodes
