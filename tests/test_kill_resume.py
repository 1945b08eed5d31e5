"""A run killed with SIGKILL and resumed continues with exactly the losses of an uninterrupted run."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kill_resume_run import CONFIG, hook
from test_train_resume import _episodes

from robopolicy.train.trainer import train

HERE = Path(__file__).parent


def _run(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HERE / "kill_resume_run.py"), str(out), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return {d["step"]: d["loss"] for d in lines if "loss" in d}  # a resumed step overwrites


def test_sigkilled_run_resumes_with_the_uninterrupted_losses(tmp_path):
    killed = tmp_path / "killed"
    proc = _run(killed, "hang")
    deadline = time.monotonic() + 240
    # Killed once step 3's checkpoint is committed and step 4 has run (the process then hangs in its hook).
    while not ((killed / "checkpoints" / "3" / "commit_success.txt").is_file() and 4 in _losses(killed)):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "run did not reach step 4"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "checkpoints" / "6").exists()

    resumed = _run(killed)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-3000:]

    full = train(
        dataclasses.replace(CONFIG, out=str(tmp_path / "full")), _episodes(), progress=False, eval_hook=hook
    )
    assert _losses(killed) == dict(full.losses)
