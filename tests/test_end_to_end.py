"""Smoke test of the whole pipeline with the tiny preset: collect 2 demos, train 5 steps, evaluate 2 episodes."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_tiny(tmp_path):
    out = tmp_path / "qs"
    proc = subprocess.run(
        [sys.executable, "-m", "robopolicy.cli", "quickstart", "--preset", "tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "95% Wilson CI" in proc.stdout

    report = json.loads((out / "quickstart.json").read_text())
    assert report["episodes"] == 2
    assert 0.0 <= report["success_rate"] <= 1.0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert [e["init_state_id"] for e in results["episodes"]] == [0, 1]
    low, high = results["wilson95"]
    assert 0.0 <= low <= results["success_rate"] <= high <= 1.0
    video = out / "eval" / "rollouts.mp4"
    assert video.is_file() and video.stat().st_size > 1000
    assert any((out / "train" / "checkpoints").iterdir())
    assert any(out.glob("dataset/robopolicy_sim/*/1.0.0/dataset_info.json"))

    # The trained run evaluates again from the CLI, from its run folder.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robopolicy.cli",
            "eval",
            "--preset",
            "tiny",
            "--checkpoint",
            str(out / "train"),
            "--out",
            str(tmp_path / "eval2"),
            "--init-states",
            "5",
            "--video-episodes",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "eval2" / "results.json").read_text())
    assert [e["init_state_id"] for e in again["episodes"]] == [5]
