"""Sweeps survive a crashed worker and a SIGKILL of the whole sweep, losing only episodes in flight."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from eval_fixtures import make_checkpoint

from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.results_store import ResultsStore, Worker
from robopolicy.eval.sweep import plan_sweep, run_sweep
from robopolicy.eval.sweep_config import SweepConfig

QUIET = lambda msg: None  # noqa: E731


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run")


def _config(run_dir, tmp_path, **kw):
    base = SweepConfig(
        db=str(tmp_path / "r.db"), checkpoints=(str(run_dir),), tasks=("cube_on_plate",), workers=0
    )
    return replace(base, **kw)


def test_worker_crash_is_recorded_and_the_sweep_goes_on(run_dir, tmp_path):
    config = _config(
        run_dir,
        tmp_path,
        checkpoints=(str(run_dir),),
        run_dirs=(),
        workers=2,
        init_states="0:4",
        settings=(ExecutionSettings(max_steps=40),),
    )
    killed = []

    def kill_first_running_worker():
        deadline = time.time() + 200
        while time.time() < deadline and not killed:
            time.sleep(0.2)
            try:
                with sqlite3.connect(config.db, timeout=5) as db:
                    row = db.execute("SELECT worker_pid FROM episodes WHERE status = 'running'").fetchone()
            except sqlite3.OperationalError:
                continue
            if row:
                os.kill(row[0], signal.SIGKILL)
                killed.append(row[0])

    killer = threading.Thread(target=kill_first_running_worker)
    killer.start()
    messages = []
    run_sweep(config, messages.append)
    killer.join()
    assert killed
    with ResultsStore(config.db) as store:
        eps = store.episodes()
    assert len(eps) == 4
    crashed = [e for e in eps if (e["failure_reason"] or "").startswith("worker_crash")]
    assert len(crashed) == 1 and "-9" in crashed[0]["failure_reason"]
    assert any("exited with code -9" in m for m in messages)


_KILLABLE = """
import sys
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.sweep import run_sweep
from robopolicy.eval.sweep_config import SweepConfig

run_sweep(SweepConfig(db=sys.argv[1], checkpoints=(sys.argv[2],), tasks=("cube_on_plate",), init_states="0:20",
                      workers=0, settings=(ExecutionSettings(max_steps=int(sys.argv[3])),)), lambda m: None)
"""


def test_sigkill_mid_sweep_loses_only_episodes_in_flight(run_dir, tmp_path):
    db = tmp_path / "r.db"
    script = tmp_path / "sweep.py"
    script.write_text(_KILLABLE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(run_dir), "30"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    done = 0
    deadline = time.time() + 200
    while time.time() < deadline and done < 3:
        time.sleep(0.1)
        if db.exists():
            with sqlite3.connect(db, timeout=5) as conn:
                try:
                    done = conn.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done >= 3
    with ResultsStore(db) as store:
        [run] = store.runs()
        finished = store.finished(run.run_id)
        in_flight = store.running_of_worker(Worker(proc.pid, socket.gethostname()))
    assert len(finished) >= 3 and len(in_flight) <= 1
    config = SweepConfig(
        db=str(db),
        checkpoints=(str(run_dir),),
        tasks=("cube_on_plate",),
        init_states="0:20",
        workers=0,
        settings=(ExecutionSettings(max_steps=30),),
    )
    plan = plan_sweep(config)
    assert plan.skipped == len(finished)  # every committed episode survived the kill
    run_sweep(config, QUIET)
    with ResultsStore(db) as store:
        eps = store.episodes(run.run_id)
        assert sorted(e["init_state_id"] for e in eps) == list(range(20))
        assert store.running_of_worker(Worker(proc.pid, socket.gethostname())) == []
