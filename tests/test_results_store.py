"""The SQLite results store: resume keys, durable commits, concurrent writers in several processes,
and claims: concurrent evaluators on one store run every episode once."""

import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from eval_fixtures import make_checkpoint
from store_writer import evaluate, write_episodes

from robopolicy.errors import UserError
from robopolicy.eval.episode_loop import episode_seed
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker


def _record(init_id: int, success: bool, reason: str | None = None) -> EpisodeRecord:
    return EpisodeRecord("cube_on_plate", init_id, 0, success, 12, reason, 0.5, video_path=None)


def test_runs_are_keyed_by_policy_step_and_settings(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        a = store.register_run("ckpt/1", 1, {"mode": "chunk"}, "h1")
        assert store.register_run("ckpt/1", 1, {"mode": "chunk"}, "h1") == a
        b = store.register_run("ckpt/1", 1, {"mode": "every_step"}, "h2")
        c = store.register_run("ckpt/2", 2, {"mode": "chunk"}, "h1")
        assert len({a, b, c}) == 3
        [run] = [r for r in store.runs() if r.run_id == b]
        assert run.settings == {"mode": "every_step"} and run.code_version


def test_finished_episodes_are_skipped_and_running_ones_are_not(tmp_path):
    db = tmp_path / "r.db"
    worker = Worker(11, socket.gethostname())
    with ResultsStore(db) as store:
        run = store.register_run("p", 1, {}, "h")
        assert store.claim(run, EpisodeKey("cube_on_plate", 0, 0), "", worker)
        store.record(run, _record(0, True), worker)
        assert store.claim(run, EpisodeKey("cube_on_plate", 1, 0), "", worker)  # then the process died
        assert store.claim(run, EpisodeKey("cube_on_plate", 2, 0), "", worker)
        store.record(run, _record(2, False, "timeout"), worker)
    # A new connection (a resumed sweep) sees exactly the finished ones.
    with ResultsStore(db) as store:
        assert store.finished(run) == {EpisodeKey("cube_on_plate", 0, 0), EpisodeKey("cube_on_plate", 2, 0)}
        assert [k for _, k, _ in store.running_of_worker(worker)] == [EpisodeKey("cube_on_plate", 1, 0)]
        # A finished episode cannot be claimed again.
        assert not store.claim(run, EpisodeKey("cube_on_plate", 0, 0), "", Worker(12, worker.host))
        assert EpisodeKey("cube_on_plate", 0, 0) in store.finished(run)
        eps = store.episodes(run)
        assert [(e["init_state_id"], e["success"], e["failure_reason"]) for e in eps] == [
            (0, 1, None),
            (2, 0, "timeout"),
        ]


def test_wal_mode_and_commit_per_episode(tmp_path):
    db = tmp_path / "r.db"
    store = ResultsStore(db)
    run = store.register_run("p", 1, {}, "h")
    store.record(run, _record(0, True))
    # Another connection sees the episode while the writer is still open: it is committed.
    other = sqlite3.connect(db)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0] == 1
    other.close()
    store.close()


def test_concurrent_writers_in_processes(tmp_path):
    db = str(tmp_path / "r.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write_episodes, args=(db, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with ResultsStore(db) as store:
        assert len(store.runs()) == 1
        eps = store.episodes()
        assert len(eps) == 160
        assert len({(e["init_state_id"], e["seed"]) for e in eps}) == 160
        assert sum(e["success"] for e in eps) == 80


def test_not_a_database_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(UserError, match=r"bad\.db"):
        ResultsStore(bad)
    with pytest.raises(UserError, match=r"missing\.db"):
        ResultsStore(tmp_path / "missing.db", create=False)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_are_exclusive_until_their_process_dies_or_they_go_stale(tmp_path):
    key = EpisodeKey("cube_on_plate", 0, 0)
    me, host = Worker.this_process(), socket.gethostname()
    with ResultsStore(tmp_path / "r.db") as store:
        run = store.register_run("p", 1, {}, "h")
        assert store.claim(run, key, "", me) and store.claim(run, key, "", me)  # its own claim: yes
        other_live = Worker(me.pid, "another-host")  # a claim from another host cannot be checked
        assert not store.claim(run, key, "", other_live)
        assert store.running_elsewhere(run, other_live) == {key}
        assert store.running_elsewhere(run, me) == set()
        dead = Worker(_dead_pid(), host)
        assert store.claim(run, key, "", dead) is False  # this process (live) holds it
        # Taken over from a process that is gone: the claim now names the new worker.
        store._db.execute("UPDATE episodes SET worker_pid = ?", (dead.pid,))
        assert store.running_elsewhere(run, me) == set()
        assert store.claim(run, key, "", other_live)
        assert [k for _, k, _ in store.running_of_worker(other_live)] == [key]
        store.record(run, _record(0, True), other_live)
        assert not store.claim(run, key, "", me)  # done
    # A claim older than the timeout is stale, whoever holds it.
    with ResultsStore(tmp_path / "r.db", claim_timeout_s=0.05) as store:
        second = EpisodeKey("cube_on_plate", 1, 0)
        assert store.claim(run, second, "", other_live)
        assert not store.claim(run, second, "", me)
        time.sleep(0.1)
        assert store.claim(run, second, "", me)


def test_version_1_files_are_upgraded_and_their_claims_taken_over(tmp_path):
    db = tmp_path / "old.db"
    with ResultsStore(db) as store:
        run = store.register_run("p", 1, {}, "h")
        store.claim(run, EpisodeKey("cube_on_plate", 3, 0), "", Worker.this_process())
    # As written before claims existed: no host column, schema version 1.
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE episodes DROP COLUMN worker_host")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with ResultsStore(db) as store:
        assert store._db.execute("SELECT value FROM meta").fetchone()[0] == "2"
        assert store.claim(run, EpisodeKey("cube_on_plate", 3, 0), "", Worker(1, "elsewhere"))


def test_concurrent_evaluators_run_every_episode_once(tmp_path):
    run_dir = make_checkpoint(tmp_path / "run")
    db, log = str(tmp_path / "r.db"), tmp_path / "started.log"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=evaluate, args=(db, str(run_dir), "0:12", 30, str(log), start)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    seeds = {episode_seed(EpisodeKey("cube_on_plate", i, 0)): i for i in range(12)}
    started = [line.split() for line in log.read_text().splitlines()]
    runs = Counter(seeds[int(seed)] for _, seed in started)
    assert runs == Counter(range(12))  # every episode started exactly once, over both evaluators
    with ResultsStore(db) as store:
        eps = store.episodes()
    assert sorted(e["init_state_id"] for e in eps) == list(range(12))
    assert all(e["steps"] > 0 and e["failure_reason"] for e in eps)
    by_pid = Counter(pid for pid, _ in started)
    assert set(by_pid) <= {str(p.pid) for p in procs}
