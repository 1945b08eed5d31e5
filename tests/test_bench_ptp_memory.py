"""benchmarks/bench_ptp_memory.py at a tiny config: a task list, a user task folder through
--tasks-dir and the oracle arm each run the whole protocol and land in the table."""

import importlib.util
import json
from pathlib import Path

import pytest

from robopolicy.errors import UserError
from robopolicy.sim.init_states import save_init_states
from robopolicy.tasks.task_path import TASK_PATH_ENV

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_ptp_memory.py"
BUNDLED = Path(__file__).parents[1] / "envs"
VARIANTS = (
    "short context (To=2)",
    "no PTP",
    "PTP",
    "PTP + self-verification (N=2)",
)


def _script():
    spec = importlib.util.spec_from_file_location("bench_ptp_memory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def user_tasks(tmp_path, monkeypatch) -> Path:
    """A folder with one user memory task (a renamed copy of a bundled one) and its initial states."""
    root = tmp_path / "my_tasks"
    (root / "my_lit_button").mkdir(parents=True)
    spec = (BUNDLED / "memory_press_lit_button" / "task.toml").read_text()
    spec = spec.replace('name = "memory_press_lit_button"', 'name = "my_lit_button"')
    (root / "my_lit_button" / "task.toml").write_text(spec)
    monkeypatch.setenv(TASK_PATH_ENV, str(root))
    save_init_states("my_lit_button", n=2)
    monkeypatch.delenv(TASK_PATH_ENV)  # the script's --tasks-dir must find it
    return root


def test_task_list_adds_oracle_arms_of_cue_tasks_only() -> None:
    script = _script()
    tasks = ["memory_press_lit_button", "memory_cube_to_farther_peg", "memory_cube_on_lit_plate+oracle"]
    assert script.task_list(tasks, oracle=False) == (tasks, [])
    assert script.task_list(tasks, oracle=True) == (
        [
            "memory_press_lit_button",
            "memory_press_lit_button+oracle",
            "memory_cube_to_farther_peg",
            "memory_cube_on_lit_plate+oracle",
        ],
        ["memory_cube_to_farther_peg"],
    )
    with pytest.raises(UserError, match="no_such_task"):
        script.task_list(["memory_press_lit_button", "no_such_task"], oracle=True)


@pytest.mark.slow  # the protocol twice: collect, a stage-1 policy, three heads, four evaluations each
def test_a_user_task_and_its_oracle_arm_run_at_a_tiny_config(user_tasks, tmp_path, capsys) -> None:
    tiny = ["--demos", "2", "--heldout", "1", "--episodes", "1", "--max-steps", "3", "--workers", "1"]
    tiny += ["--image-size", "16", "--stage1-steps", "2", "--head-steps", "2", "--batch", "2"]
    tiny += ["--width", "16", "--layers", "1", "--ddim-steps", "2", "--candidates", "2"]
    out = tmp_path / "bench"
    summary = _script().main(
        ["--tasks", "my_lit_button", "--tasks-dir", str(user_tasks), "--oracle", "--out", str(out), *tiny]
    )
    tasks = ["my_lit_button", "my_lit_button+oracle"]
    assert summary["tasks"] == tasks and summary["no_oracle_arm"] == []
    assert [(r["task"], r["variant"]) for r in summary["rows"]] == [(t, v) for t in tasks for v in VARIANTS]
    assert all(r["episodes"] == 1 for r in summary["rows"])
    stored = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["task"], r["variant"], r["successes"]) for r in stored] == [
        (r["task"], r["variant"], r["successes"]) for r in summary["rows"]
    ]
    table = capsys.readouterr().out
    assert "| my_lit_button+oracle | PTP |" in table
    for task in tasks:
        assert (out / task / "demos").is_dir()
