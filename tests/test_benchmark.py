"""`robopolicy benchmark` end to end at the tiny recipe: stages, resume, reproducibility, the table."""

import json
import sqlite3
import subprocess
import sys

import jax
import numpy as np
import pytest

from robopolicy.benchmark_recipes import RECIPES
from robopolicy.benchmark_table import BenchmarkTableConfig, load_rows, table_markdown, write_table
from robopolicy.suite_benchmark import BenchmarkConfig, run_benchmark, run_label
from robopolicy.train.loaded_policy import load_policy

SUITE = "libero_style_goal"
TASKS = ("goal_open_drawer", "goal_press_button")


def _outcomes(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return sorted(
            con.execute("SELECT task, init_state_id, seed, success, steps, failure_reason FROM episodes")
        )


@pytest.mark.slow
def test_tiny_benchmark_resumes_and_reproduces(tmp_path, capsys):
    config = BenchmarkConfig(suite=SUITE, recipe="tiny", out=str(tmp_path / "a"), tasks=TASKS)
    row = run_benchmark(config, progress=False)
    root = tmp_path / "a" / SUITE
    run_dir = root / row.label
    assert row.trials == len(TASKS) * 2 and set(row.per_task) == set(TASKS)
    assert sum(row.failures.values()) == row.trials - row.successes
    assert json.loads((run_dir / "row.json").read_text())["trials"] == row.trials
    assert (root / "report" / "report.md").is_file()

    # A finished run skips every stage: nothing is collected, trained or evaluated again.
    checkpoint = run_dir / "checkpoints" / "4"
    before = checkpoint.stat().st_mtime_ns
    capsys.readouterr()
    run_benchmark(config, progress=False)
    out = capsys.readouterr().out
    assert "[1/4] data: done" in out and "[2/4] train: done" in out and "[3/4] eval: done" in out
    assert checkpoint.stat().st_mtime_ns == before

    # A run killed during evaluation keeps its finished episodes and runs only the missing ones.
    eval_stage = run_dir / "stages" / "eval" / "stage.json"
    state = json.loads(eval_stage.read_text())
    eval_stage.write_text(json.dumps({**state, "done": False}))
    full = _outcomes(root / "results.db")
    with sqlite3.connect(root / "results.db") as con:
        con.execute("DELETE FROM episodes WHERE task = ?", (TASKS[0],))
    capsys.readouterr()
    run_benchmark(config, progress=False)
    captured = capsys.readouterr()
    assert "2 already in" in captured.err and "2 to run" in captured.err
    assert "[2/4] train: done" in captured.out
    assert _outcomes(root / "results.db") == full

    # The same recipe and seeds elsewhere: the same data, weights and episode outcomes.
    other = run_benchmark(
        BenchmarkConfig(suite=SUITE, recipe="tiny", out=str(tmp_path / "b"), tasks=TASKS), progress=False
    )
    assert other.hashes == row.hashes
    assert _outcomes(tmp_path / "b" / SUITE / "results.db") == full
    a, b = load_policy(run_dir), load_policy(tmp_path / "b" / SUITE / other.label)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # PTP multistage: a head on the cached embeddings of the finished tiny run, which is reused.
    capsys.readouterr()
    head = run_benchmark(
        BenchmarkConfig(suite=SUITE, recipe="tiny_ptp", out=str(tmp_path / "a"), tasks=TASKS), progress=False
    )
    out = capsys.readouterr().out
    assert "train (stage 1, the tiny recipe's run): done" in out and checkpoint.stat().st_mtime_ns == before
    assert head.trials == row.trials and set(head.seconds) == {"data", "encoder", "train", "eval"}
    assert load_policy(run_dir.parent / head.label).config.encoder == "cached"

    md, png = write_table(BenchmarkTableConfig(out=str(tmp_path / "a")))
    assert png.is_file() and row.label in md.read_text()
    assert (
        table_markdown(load_rows(tmp_path / "a")).splitlines()[2].startswith(f"| {row.label} | – | – | 0.0%")
    )


def test_recipe_hashes_follow_what_changes(tmp_path):
    cpu = RECIPES["cpu"]
    tasks = ("a", "b")
    h = cpu.stage_hashes(tasks)
    assert len(set(h.values())) == 3
    # Paths and parallelism are not part of the recipe; demos, tasks and steps are, downstream only.
    import dataclasses

    from robopolicy.models.self_verification import Verification

    moved = dataclasses.replace(
        cpu,
        collect=dataclasses.replace(cpu.collect, out="elsewhere", workers=7, max_failures=3),
        eval=dataclasses.replace(
            cpu.eval,
            num_envs=5,
            db="x.db",
            # a label, and scoring options that one candidate never uses
            execution=dataclasses.replace(
                cpu.eval.execution, name="x", verification=Verification(selection="random")
            ),
        ),
    )
    assert moved.stage_hashes(tasks) == h
    every_step = dataclasses.replace(
        cpu,
        eval=dataclasses.replace(
            cpu.eval, execution=dataclasses.replace(cpu.eval.execution, mode="every_step")
        ),
    )
    assert every_step.stage_hashes(tasks)["eval"] != h["eval"]
    more_steps = dataclasses.replace(cpu, train=dataclasses.replace(cpu.train, steps=cpu.train.steps + 1))
    hs = more_steps.stage_hashes(tasks)
    assert hs["data"] == h["data"] and hs["train"] != h["train"] and hs["eval"] != h["eval"]
    assert cpu.stage_hashes(("a",))["data"] != h["data"]


def test_a_run_of_another_recipe_is_refused_with_one_line(tmp_path):
    # The run folder's training stage was made by another version of the recipe: refused, left as it was.
    config = BenchmarkConfig(suite=SUITE, recipe="tiny", out=str(tmp_path), tasks=TASKS)
    stage = tmp_path / SUITE / run_label(config) / "stages" / "train" / "stage.json"
    stage.parent.mkdir(parents=True)
    stage.write_text(json.dumps({"hash": "0" * 16, "done": True}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robopolicy.cli",
            "benchmark",
            SUITE,
            "--recipe",
            "tiny",
            "--out",
            str(tmp_path),
            "--tasks",
            *TASKS,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "made by a different recipe" in proc.stderr
    assert json.loads(stage.read_text())["hash"] == "0" * 16
    assert not list((tmp_path / SUITE).glob("data-*"))  # refused before collecting anything


def test_unknown_recipe_and_tasks_are_one_line_errors(tmp_path):
    for args, message in (
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--tasks", "goal_open_drawer", "spatial_behind_plate"], "spatial_behind_plate not in suite"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "robopolicy.cli", "benchmark", SUITE, "--out", str(tmp_path), *args],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())
