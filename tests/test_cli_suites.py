"""The suite verbs: `robopolicy suites`, `expert-check` and `collect --suite`."""

import subprocess
import sys

from robopolicy.cli import main
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.tasks.spec import load_task_spec
from robopolicy.tasks.suites import suite_tasks


def test_suites_lists_suites_tasks_and_instructions(capsys) -> None:
    assert main(["suites"]) == 0
    out = capsys.readouterr().out
    for suite in ("libero_style_spatial", "libero_style_object", "libero_style_goal", "libero_style_long"):
        assert f"{suite} (10 tasks)" in out
    assert "libero_style_memory (" in out
    assert (
        "spatial_between_plate_and_box" in out
        and load_task_spec("spatial_between_plate_and_box").instruction in out
    )


def test_expert_check_prints_a_table(capsys) -> None:
    args = [
        "expert-check",
        "--suite",
        "libero_style_memory",
        "--tasks",
        "memory_press_lit_button",
        "--num-states",
        "2",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| memory_press_lit_button | 2/2 | 100 % |" in out


def test_unknown_suite_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "robopolicy.cli", "expert-check", "--suite", "libero_style_nope"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "libero_style_nope" in lines[0], proc.stderr


def test_collect_suite_writes_one_dataset_with_tasks_and_instructions(tmp_path) -> None:
    out = tmp_path / "ds"
    args = ["collect", "--suite", "libero_style_memory", "--demos-per-task", "1", "--image-size", "32"]
    assert main([*args, "--out", str(out)]) == 0
    episodes = load_episodes(out)
    tasks = suite_tasks("libero_style_memory")
    assert [e.task for e in episodes] == tasks
    assert [e.instruction for e in episodes] == [load_task_spec(t).instruction for t in tasks]
    assert [e.episode_id for e in episodes] == list(range(len(tasks)))
    assert all(e.success and e.frames["agentview"].shape[1:] == (32, 32, 3) for e in episodes)
