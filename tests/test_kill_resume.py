"""A run killed with SIGKILL and resumed continues with exactly the losses of an uninterrupted run:
policy training and DynaMo pretraining, through the one training loop."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_pretrain_dynamo
from kill_resume_run import CONFIG, dynamo_config, hook
from test_train_resume import _episodes

from robopolicy.train.pretrain_dynamo import pretrain_dynamo
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
    path = run / "train_log.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    steps = [d["step"] for d in lines if "loss" in d]
    assert len(steps) == len(set(steps)), steps  # every step logged once, also after the resume
    return {d["step"]: d["loss"] for d in lines if "loss" in d}


def _kill_after_step_4_and_resume(killed: Path, *mode: str) -> None:
    proc = _run(killed, *mode, "hang")
    deadline = time.monotonic() + 240
    # Killed once step 3's checkpoint is committed and step 4 has run (the process then hangs).
    while not ((killed / "checkpoints" / "3" / "commit_success.txt").is_file() and 4 in _losses(killed)):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "run did not reach step 4"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "checkpoints" / "6").exists()

    resumed = _run(killed, *mode)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_sigkilled_run_resumes_with_the_uninterrupted_losses(tmp_path):
    killed = tmp_path / "killed"
    _kill_after_step_4_and_resume(killed)
    full = train(
        dataclasses.replace(CONFIG, out=str(tmp_path / "full")),
        _episodes(),
        progress=False,
        make_eval_hook=lambda meta, run_dir: hook,
    )
    assert _losses(killed) == dict(full.losses)


@pytest.mark.slow
def test_sigkilled_dynamo_run_resumes_with_the_uninterrupted_losses(tmp_path):
    killed = tmp_path / "killed"
    _kill_after_step_4_and_resume(killed, "dynamo")
    full = pretrain_dynamo(
        dynamo_config(str(tmp_path / "full")), test_pretrain_dynamo._episodes(), progress=False
    )
    assert [s for s, _ in full.losses] == [1, 2, 3, 4, 5, 6]
    assert _losses(killed) == dict(full.losses)
