"""Tasks outside the package: the search path, `--tasks-dir`, `init-states`, and every task verb on a
user task (a copy of cube_on_plate under another name, in a folder of the test's own)."""

import textwrap
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import make_checkpoint

from robopolicy.cli import main
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.paths import envs_dir
from robopolicy.sim.init_states import EVAL_STREAM, InitStatesError, generate_init_states, load_init_states
from robopolicy.tasks.spec import load_task_spec
from robopolicy.tasks.task_path import TASK_PATH_ENV, UnknownTaskError, find_task, task_names

TASK = "my_cube_on_plate"


def _write_task(root: Path, name: str, instruction: str = "put the red cube on the blue plate") -> Path:
    text = (envs_dir() / "cube_on_plate" / "task.toml").read_text()
    text = text.replace('name = "cube_on_plate"', f'name = "{name}"')
    text = text.replace('"put the red cube on the blue plate"', f'"{instruction}"')
    (root / name).mkdir(parents=True)
    (root / name / "task.toml").write_text(text)
    return root / name


@pytest.fixture(autouse=True)
def _own_task_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # `--tasks-dir` edits os.environ; monkeypatch puts the variable back as it was after each test.
    monkeypatch.delenv(TASK_PATH_ENV, raising=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user task folder with TASK and its first three fixed states, made by `robopolicy init-states`."""
    root = tmp_path_factory.mktemp("user_tasks")
    _write_task(root, TASK)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(TASK_PATH_ENV, raising=False)
        assert main(["init-states", TASK, "-n", "3", "--tasks-dir", str(root)]) == 0
    return root


def test_search_path_order_first_wins_and_unknown_tasks(tmp_path: Path, monkeypatch) -> None:
    first, second, missing = tmp_path / "first", tmp_path / "second", tmp_path / "missing"
    _write_task(first, "mine", "first instruction")
    _write_task(second, "mine", "second instruction")
    _write_task(second, "cube_on_plate", "a user's own cube_on_plate")
    monkeypatch.setenv(TASK_PATH_ENV, f"{first}:{second}:{missing}")
    assert find_task("mine") == first / "mine"
    assert load_task_spec("mine").instruction == "first instruction"
    assert load_task_spec("cube_on_plate").instruction == "a user's own cube_on_plate"  # shadows the bundled
    assert task_names()["mine"] == first / "mine" and "spatial_behind_plate" in task_names()
    with pytest.raises(UnknownTaskError) as err:
        find_task("nope")
    message = str(err.value)
    assert "'nope'" in message and str(first) in message and f"{missing} (missing)" in message
    assert str(envs_dir()) in message and "\n" not in message


def test_init_states_follow_the_seed_rule_and_are_checked(root: Path, tmp_path: Path, monkeypatch) -> None:
    assert (root / TASK / "init_states.npz").is_file()
    monkeypatch.setenv(TASK_PATH_ENV, str(root))
    states = load_init_states(TASK)
    assert states.shape[0] == 3
    np.testing.assert_array_equal(states, generate_init_states(TASK, 3, EVAL_STREAM))
    # Editing the scene invalidates them, with the command that regenerates them in the message.
    edited = _write_task(tmp_path, TASK)
    (edited / "init_states.npz").write_bytes((root / TASK / "init_states.npz").read_bytes())
    toml = edited / "task.toml"
    toml.write_text(toml.read_text().replace("radius = 0.085", "radius = 0.08"))
    monkeypatch.setenv(TASK_PATH_ENV, str(tmp_path))
    with pytest.raises(InitStatesError, match=f"robopolicy init-states {TASK}"):
        load_init_states(TASK)


@pytest.mark.parametrize("via", ["--tasks-dir", TASK_PATH_ENV])
def test_collect_and_expert_check(root: Path, tmp_path: Path, via: str, monkeypatch, capsys) -> None:
    extra = ["--tasks-dir", str(root)] if via == "--tasks-dir" else []
    if via == TASK_PATH_ENV:
        monkeypatch.setenv(TASK_PATH_ENV, str(root))
    out = tmp_path / "ds"
    args = ["collect", "--task", TASK, "--num-episodes", "1", "--image-size", "32", "--out", str(out)]
    assert main([*args, *extra]) == 0
    (episode,) = load_episodes(out)
    assert episode.task == TASK and episode.success
    assert main(["expert-check", "--tasks", TASK, "--num-states", "2", *extra]) == 0
    assert f"| {TASK} | 2/2 | 100 % |" in capsys.readouterr().out


def test_eval_via_tasks_dir_reaches_the_env_workers(root: Path, tmp_path: Path, capsys) -> None:
    run = make_checkpoint(tmp_path / "run")
    args = [
        "eval",
        "--policy",
        str(run),
        "--tasks",
        TASK,
        "--init-states",
        "0:2",
        "--execution.max-steps",
        "3",
    ]
    args += ["--db", str(tmp_path / "e.db"), "--video-episodes", "0", "--tasks-dir", str(root)]
    assert main([*args, "--backend", "vector", "--num-envs", "2"]) == 0  # env workers are processes
    out = capsys.readouterr().out
    assert TASK in out and "0/2" in out


def test_sweep_via_task_path(root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(TASK_PATH_ENV, str(root))
    run = make_checkpoint(tmp_path / "run")
    (tmp_path / "sweep.toml").write_text(
        textwrap.dedent(f"""
        db = "{tmp_path / "results.db"}"
        run_dirs = ["{run}"]
        tasks = ["{TASK}"]
        init_states = "0:2"
        workers = 0
        backend = "local"
        [[settings]]
        name = "chunk"
        max_steps = 3
        """)
    )
    assert main(["sweep", "--config", str(tmp_path / "sweep.toml")]) == 0
    assert "0/2" in capsys.readouterr().out


def test_suites_lists_user_tasks_outside_the_suites(root: Path, capsys) -> None:
    assert main(["suites", "--tasks-dir", str(root)]) == 0
    out = capsys.readouterr().out
    others = out[out.index("other tasks") :]
    assert TASK in others and "cube_on_plate" in others and "spatial_behind_plate" not in others


def test_one_line_errors(root: Path, tmp_path: Path, capsys) -> None:
    assert main(["collect", "--task", "no_such_task", "--tasks-dir", str(root)]) == 2
    assert main(["expert-check", "--tasks", "x", "--tasks-dir", str(tmp_path / "absent")]) == 2
    assert main(["init-states"]) == 2
    assert main(["report", "--tasks-dir", str(root)]) == 2  # a command that runs no tasks has no such option
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 4, err
    assert "no_such_task" in err[0] and str(root) in err[0] and "envs" in err[0]
    assert "absent" in err[1] and "no such folder" in err[1]
    assert "robopolicy init-states TASK" in err[2]
    assert err[3].startswith("robopolicy report: error:")
