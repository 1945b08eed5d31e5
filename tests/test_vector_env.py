import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

import robopolicy.sim as sim
from robopolicy.errors import UserError
from robopolicy.paths import envs_dir
from robopolicy.sim import EnvConfig, TabletopEnv, load_init_states
from robopolicy.sim.vector_env import WorkerError

TASK = "cube_on_plate"


def _alive(pid: int) -> bool:
    """Running (not reaped and not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _actions(seed: int, steps: int, num_envs: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, num_envs, 7)).astype(np.float32)


def _assert_info_matches(vector_info: dict, i: int, single_info: dict) -> None:
    for key, value in single_info.items():
        assert vector_info[f"_{key}"][i], key
        assert vector_info[key][i] == value, key


@pytest.mark.parametrize("shared_memory", [True, False])
def test_matches_single_envs(shared_memory: bool) -> None:
    ids = [3, 7]
    singles = [sim.make(TASK, render=False) for _ in ids]
    with sim.make_vector([TASK, TASK], render=False, shared_memory=shared_memory) as venv:
        assert isinstance(venv, VectorEnv)
        assert venv.worker_pids == (None, None)  # lazy: no process before the first reset
        obs, info = venv.reset(options={"init_state_id": ids})
        assert venv.observation_space.contains(obs)
        for i, (env, k) in enumerate(zip(singles, ids, strict=True)):
            single_obs, single_info = env.reset(options={"init_state_id": k})
            np.testing.assert_array_equal(obs["state"][i], single_obs["state"])
            _assert_info_matches(info, i, single_info)
        assert not np.array_equal(*venv.get_states())
        for actions in _actions(0, 12, 2):
            obs, rewards, terminated, truncated, info = venv.step(actions)
            for i, env in enumerate(singles):
                s_obs, s_rew, s_term, s_trunc, s_info = env.step(actions[i])
                np.testing.assert_array_equal(obs["state"][i], s_obs["state"])
                assert (rewards[i], terminated[i], truncated[i]) == (s_rew, s_term, s_trunc)
                _assert_info_matches(info, i, s_info)
        for state, env in zip(venv.get_states(), singles, strict=True):
            np.testing.assert_array_equal(state, env.sim.get_state())  # bitwise, objects included
        assert venv.instructions == (singles[0].instruction,) * 2
    for env in singles:
        env.close()


def test_rendered_workers_match_and_are_fresh_interpreters() -> None:
    # A GL context in the parent must not reach the workers: they are exec'd, not forked.
    parent_env = TabletopEnv(image_size=32)
    parent_obs, _ = parent_env.reset(seed=4)
    with sim.make_vector(TASK, 1, image_size=32) as venv:
        obs, _ = venv.reset(seed=4)
        for cam in ("agentview", "wrist"):
            assert obs[cam].shape == (1, 32, 32, 3)
            np.testing.assert_array_equal(obs[cam][0], parent_obs[cam])
        action = np.full((1, 7), 0.3, dtype=np.float32)
        obs, *_ = venv.step(action)
        parent_obs, *_ = parent_env.step(action[0])
        np.testing.assert_array_equal(obs["wrist"][0], parent_obs["wrist"])
        pid = venv.worker_pids[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"robopolicy.sim.vector_worker" in cmdline
    parent_env.close()


def test_per_env_seeds() -> None:
    single = sim.make(TASK, render=False)
    with sim.make_vector(TASK, 2, render=False) as venv:
        venv.reset(seed=20)
        states = venv.get_states()
        for i in range(2):
            single.reset(seed=20 + i)
            np.testing.assert_array_equal(states[i], single.sim.get_state())
        assert not np.array_equal(states[0], states[1])
        venv.reset(seed=[None, 9])
        single.reset(seed=9)
        np.testing.assert_array_equal(venv.get_states()[1], single.sim.get_state())
    single.close()


@pytest.fixture(scope="module")
def short_task(tmp_path_factory) -> str:
    """cube_on_plate with a 3-step cap and its own name and instruction, as a spec file."""
    path = tmp_path_factory.mktemp("tasks") / "short.toml"
    text = (envs_dir() / TASK / "task.toml").read_text()
    text = text.replace('name = "cube_on_plate"', 'name = "short_cube"').replace(
        "max_steps = 150", "max_steps = 3"
    )
    path.write_text(text.replace('"put the red cube on the blue plate"', '"touch the red cube"'))
    return str(path)


def test_per_env_tasks(short_task: str) -> None:
    with sim.make_vector([TASK, short_task], render=False) as venv:
        assert venv.tasks == (TASK, short_task)
        venv.reset(seed=0)
        assert venv.instructions == ("put the red cube on the blue plate", "touch the red cube")
        assert venv.max_steps == (150, 3)
        for _ in range(3):
            _, _, _, truncated, _ = venv.step(np.zeros((2, 7), dtype=np.float32))
        assert list(truncated) == [False, True]


def test_next_step_autoreset(short_task: str) -> None:
    single = sim.make(short_task, render=False)
    with sim.make_vector(short_task, 1, render=False) as venv:
        venv.reset(seed=2)
        single.reset(seed=2)
        zero = np.zeros((1, 7), dtype=np.float32)
        for _ in range(single.max_steps):
            obs, _, terminated, truncated, _ = venv.step(zero)
            single.step(zero[0])
        assert truncated[0] and not terminated[0]
        obs, rewards, terminated, truncated, info = venv.step(np.ones((1, 7), dtype=np.float32))
        single_obs, single_info = single.reset()  # the next layout of the env's seeded generator
        np.testing.assert_array_equal(venv.get_states()[0], single.sim.get_state())
        np.testing.assert_array_equal(obs["state"][0], single_obs["state"])
        assert rewards[0] == 0 and not terminated[0] and not truncated[0]
        _assert_info_matches(info, 0, single_info)


def test_disabled_autoreset_holds_ended_envs(short_task: str) -> None:
    zero = np.zeros((2, 7), dtype=np.float32)
    with sim.make_vector([short_task, TASK], render=False, autoreset_mode=AutoresetMode.DISABLED) as venv:
        assert venv.metadata["autoreset_mode"] == AutoresetMode.DISABLED
        venv.reset(seed=0)
        for _ in range(3):
            obs, _, _, truncated, _ = venv.step(zero)
        assert list(truncated) == [True, False]
        ended_state = venv.get_states()[0]
        held, rewards, _, truncated, info = venv.step(zero)
        assert list(truncated) == [True, False] and rewards[0] == 0
        assert not info["_success"][0] and info["_success"][1]
        np.testing.assert_array_equal(held["state"][0], obs["state"][0])
        np.testing.assert_array_equal(venv.get_states()[0], ended_state)  # not stepped
        running = venv.get_states()[1]
        fixed = load_init_states(TASK)[5]
        venv.reset(options={"reset_mask": np.array([True, False]), "init_state": fixed})
        states = venv.get_states()
        np.testing.assert_array_equal(states[0], fixed)
        np.testing.assert_array_equal(states[1], running)  # not reset
        _, _, _, truncated, _ = venv.step(zero)
        assert not truncated.any()


def test_crashed_worker_is_restarted_and_reported() -> None:
    single = sim.make(TASK, render=False)
    actions = _actions(1, 6, 2)
    with sim.make_vector(TASK, 2, render=False) as venv:
        venv.reset(options={"init_state_id": [0, 1]})
        single.reset(options={"init_state_id": 1})
        for a in actions[:3]:
            venv.step(a)
            single.step(a[1])
        old_pid = venv.worker_pids[0]
        os.kill(old_pid, signal.SIGKILL)
        obs, rewards, terminated, truncated, info = venv.step(actions[3])
        s_obs, *_ = single.step(actions[3][1])
        assert truncated[0] and not terminated[0] and rewards[0] == 0
        assert not info["success"][0]
        report = info["worker_crash"][0]
        assert "SIGKILL" in report and str(old_pid) in report and report == info["failure_reason"][0]
        assert not info["_worker_crash"][1]
        assert not obs["state"][0].any()
        np.testing.assert_array_equal(obs["state"][1], s_obs["state"])  # the other env went on
        (crash,) = venv.crashes
        assert (crash.env_index, crash.pid, crash.command) == (0, old_pid, "step")
        assert crash.new_pid == venv.worker_pids[0] != old_pid and _alive(crash.new_pid)
        assert not _alive(old_pid)
        # NEXT_STEP: the following step resets env 0 on the new worker; then both run on.
        obs, rewards, terminated, truncated, info = venv.step(actions[4])
        assert not truncated.any() and info["_success"].all()
        venv.step(actions[5])
    single.close()


def test_silent_worker_times_out() -> None:
    with sim.make_vector(TASK, 1, render=False, timeout_s=1.0) as venv:
        venv.reset(seed=0)
        pid = venv.worker_pids[0]
        os.kill(pid, signal.SIGSTOP)
        _, _, _, truncated, info = venv.step(np.zeros((1, 7), dtype=np.float32))
        assert truncated[0] and "no reply within 1 s" in info["worker_crash"][0]
        assert not _alive(pid)


def test_env_exception_is_raised_and_workers_stay_in_step() -> None:
    with sim.make_vector(TASK, 2, render=False) as venv:
        with pytest.raises(WorkerError, match=r"env 1 .*out of range"):
            venv.reset(options={"init_state_id": [0, 99]})
        venv.reset(options={"init_state_id": [0, 1]})  # every reply was read: no stale message
        np.testing.assert_array_equal(venv.get_states()[1], load_init_states(TASK)[1])
        bad = np.zeros((2, 7), dtype=np.float32)
        bad[0] = np.nan
        with pytest.raises(WorkerError, match="action must be finite"):
            venv.step(bad)
        venv.step(np.zeros((2, 7), dtype=np.float32))
        assert venv.crashes == []
        with pytest.raises(ValueError, match="shape"):
            venv.step(np.zeros((3, 7)))


def _wait_gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


def _script_workers(exit_call: str) -> tuple[list[int], str]:
    """Worker pids of a child Python that opens a vector env and exits with `exit_call`, unclosed."""
    script = (
        "import os, sys, robopolicy.sim as sim\n"
        f"v = sim.make_vector('{TASK}', 1, render=False); v.reset(seed=0)\n"
        f"print(*v.worker_pids, flush=True); {exit_call}\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return [int(p) for p in out.stdout.split()], out.stderr


def test_close_reaps_workers_and_orphans_exit() -> None:
    venv = sim.make_vector(TASK, 2, render=False)
    venv.reset(seed=0)
    pids = venv.worker_pids
    venv.close()
    assert not any(_alive(p) for p in pids)
    venv.close()  # idempotent
    # An unclosed vector env is closed at interpreter exit, quietly.
    pids, stderr = _script_workers("sys.exit(0)")
    assert not any(_alive(p) for p in pids) and stderr == ""
    # A parent that dies without any cleanup leaves no worker behind: they exit on its socket's EOF.
    pids, _ = _script_workers("os._exit(0)")
    assert _wait_gone(pids)


def test_parent_builds_no_model_or_renderer(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the parent process must not build MuJoCo envs or renderers")

    monkeypatch.setattr(TabletopEnv, "__init__", refuse)
    monkeypatch.setattr(mujoco.Renderer, "__init__", refuse)
    with sim.make_vector(TASK, 1, image_size=32) as venv:
        obs, _ = venv.reset(seed=0)
        venv.step(np.zeros((1, 7), dtype=np.float32))
        assert obs["agentview"][0].std() > 10  # rendered, in the worker


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(UserError, match="not_a_task"):
        sim.make_vector(["not_a_task"])
    # An invalid spec is parsed in the worker and raised here as the same one-line UserError.
    bad = tmp_path / "bad.toml"
    bad.write_text((envs_dir() / TASK / "task.toml").read_text().replace("max_steps = 150", "max_steps = -3"))
    with sim.make_vector([str(bad)], render=False) as venv, pytest.raises(UserError, match="max_steps"):
        venv.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs=3"):
        sim.make_vector([TASK, TASK], 3)
    venv = sim.make_vector(num_envs=2, config=EnvConfig(task=TASK, image_size=32, render=False))
    assert venv.tasks == (TASK, TASK) and venv.single_observation_space["state"].shape == (9,)
    venv.close()
    with pytest.raises(ValueError, match="SAME_STEP"):
        sim.make_vector(TASK, 1, autoreset_mode="SameStep")


def test_interrupted_step_needs_reset_and_replaces_out_of_step_workers(monkeypatch) -> None:
    from robopolicy.sim import worker_process

    zero = np.zeros((2, 7), dtype=np.float32)
    single = sim.make(TASK, render=False)
    with sim.make_vector(TASK, 2, render=False) as venv:
        venv.reset(seed=0)
        pids = venv.worker_pids
        os.kill(pids[0], signal.SIGINT)  # Ctrl-C in a terminal: workers ignore it
        venv.step(zero)
        assert venv.crashes == []

        real_recv = worker_process.recv_message
        calls = []

        def interrupted_once(sock):
            if not calls:
                calls.append(1)
                raise KeyboardInterrupt
            return real_recv(sock)

        monkeypatch.setattr(worker_process, "recv_message", interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            venv.step(zero)  # both workers now owe a reply
        with pytest.raises(RuntimeError, match="interrupted"):
            venv.step(zero)
        with pytest.raises(RuntimeError, match="reset every env"):
            venv.reset(options={"reset_mask": np.array([True, False])})
        venv.reset(seed=3)
        assert all(new != old for new, old in zip(venv.worker_pids, pids, strict=True))
        for i, state in enumerate(venv.get_states()):
            single.reset(seed=3 + i)
            np.testing.assert_array_equal(state, single.sim.get_state())
        venv.step(zero)
    single.close()
