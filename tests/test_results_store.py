"""The SQLite results store: resume keys, durable commits, concurrent writers in several processes."""

import multiprocessing
import sqlite3

import pytest
from store_writer import write_episodes

from robopolicy.errors import UserError
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore


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
    with ResultsStore(db) as store:
        run = store.register_run("p", 1, {}, "h")
        store.mark_running(run, EpisodeKey("cube_on_plate", 0, 0), "", 11)
        store.record(run, _record(0, True), 11)
        store.mark_running(run, EpisodeKey("cube_on_plate", 1, 0), "", 11)  # then the process died
        store.mark_running(run, EpisodeKey("cube_on_plate", 2, 0), "", 11)
        store.record(run, _record(2, False, "timeout"), 11)
    # A new connection (a resumed sweep) sees exactly the finished ones.
    with ResultsStore(db) as store:
        assert store.finished(run) == {EpisodeKey("cube_on_plate", 0, 0), EpisodeKey("cube_on_plate", 2, 0)}
        assert [k for _, k, _ in store.running_of_worker(11)] == [EpisodeKey("cube_on_plate", 1, 0)]
        # Starting a finished episode again does not reopen it.
        store.mark_running(run, EpisodeKey("cube_on_plate", 0, 0), "", 12)
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
