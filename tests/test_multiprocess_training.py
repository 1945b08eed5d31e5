"""Two processes × 2 simulated CPU devices, joined by jax.distributed (as `robopolicy launch` starts
them), train exactly as one process × 4 devices: the same losses step for step, one set of
checkpoints that a single process restores, logs, TensorBoard events and evaluation hooks from
process 0 only, and a SIGKILL of both processes followed by a restart resumes with the uninterrupted
losses. DynaMo pretraining, through the same loop, gives the 1-process losses too."""

import json
import signal
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from robopolicy.launch import start_processes, stop_processes
from robopolicy.paths import storage_path
from robopolicy.train.checkpoint import load_dynamo_encoder, saved_steps
from robopolicy.train.loaded_policy import load_policy

HERE = Path(__file__).parent


def _start(out: Path, mode: str, processes: int, devices: int, *extra: str):
    argv = [sys.executable, str(HERE / "multiprocess_run.py"), str(out), mode, *extra]
    return start_processes(argv, processes, devices, capture=True)


def _finish(procs, timeout: float = 240) -> None:
    for index, proc in enumerate(procs):
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"process {index}: {err[-3000:]}"


def _rows(run: Path) -> list[dict]:
    path = run / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _losses(run: Path) -> dict[int, float]:
    steps = [r["step"] for r in _rows(run) if "loss" in r]
    assert len(steps) == len(set(steps)), steps  # one writer: every step logged once
    return {r["step"]: r["loss"] for r in _rows(run) if "loss" in r}


def _event_files(run: Path) -> list[Path]:
    return sorted((run / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_two_processes_train_resume_and_write_like_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    reference = _start(one, "policy", 1, 4)
    killed = _start(two, "policy", 2, 2, "hang")
    # Killed once step 3's checkpoint is committed and step 4 has run (process 0 then hangs in its hook).
    deadline = time.monotonic() + 240
    while not ((two / "checkpoints" / "3" / "commit_success.txt").is_file() and 4 in _losses(two)):
        assert all(p.poll() is None for p in killed), [p.communicate()[1][-2000:] for p in killed]
        assert time.monotonic() < deadline, "the 2-process run did not reach step 4"
        time.sleep(0.2)
    stop_processes(killed, signal.SIGKILL)
    assert [p.returncode for p in killed] == [-signal.SIGKILL] * 2
    assert saved_steps(storage_path(two / "checkpoints")) == [3]
    _finish(_start(two, "policy", 2, 2))
    _finish(reference)

    # Steps 1-4 before the kill and 4-6 after the restart: the losses of one process on 4 devices.
    expected = _losses(one)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    got = _losses(two)
    assert sorted(got) == sorted(expected)
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=0, atol=1e-5)

    # One checkpoint per step, with each process's data-iterator state; one process restores it.
    assert saved_steps(storage_path(two / "checkpoints")) == [3, 6]
    iterators = sorted(p.name for p in (two / "checkpoints" / "6" / "data_iter").glob("*.json"))
    assert iterators == ["process_0-of-2.json", "process_1-of-2.json"]
    a, b = load_policy(two), load_policy(one)
    assert a.step == b.step == 6
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-5)

    # Only process 0 built and ran the evaluation hooks and wrote events: one events file per start.
    hooks = sorted(p.name for p in (two / "hooks").iterdir())
    assert hooks == sorted(["built.process0", *(f"step{s}.process0" for s in range(1, 7))])
    assert len(_event_files(two)) == 2 and len(_event_files(one)) == 1


@pytest.mark.slow
def test_two_process_dynamo_pretraining_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # The reference runs unsharded on one device; the 2 × 2 devices shard data and parameters (FSDP).
    reference, runs = _start(one, "dynamo", 1, 1), _start(two, "dynamo", 2, 2)
    _finish(runs)
    _finish(reference)
    expected, got = _losses(one), _losses(two)
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=0, atol=1e-5)
    assert saved_steps(storage_path(two / "checkpoints")) == [3, 6]
    _, params = load_dynamo_encoder(two)
    _, reference_params = load_dynamo_encoder(one)
    # Within one learning-rate step (1e-3): Adam turns the rounding differences of near-zero gradients
    # (another reduction order over 2 processes) into updates of up to lr, while the losses agree.
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-3)
    probes = [r for r in _rows(two) if r.get("kind") == "eval"]
    assert [r["step"] for r in probes] == [0, 6]  # the probes ran once each, on process 0
    assert len(_event_files(two)) == 1
