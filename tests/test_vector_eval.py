"""Vectorized evaluation: batched actions equal per-env ones, outcomes equal the sequential runner's,
worker crashes are recorded per episode, reruns skip finished episodes, tasks are spread over envs."""

import dataclasses
import os
import signal
from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from eval_fixtures import TINY_POLICY, make_checkpoint

from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.episode_loop import schedule_wave
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.eval.results_store import ResultsStore
from robopolicy.eval.sweep import run_sweep
from robopolicy.eval.sweep_config import SweepConfig
from robopolicy.eval.vector_backend import run_vectorized
from robopolicy.models.policy_presets import TINY_TRANSFORMER_DDIM
from robopolicy.sim import make_vector
from robopolicy.train.loaded_policy import load_policy

QUIET = lambda msg: None  # noqa: E731
POLICY = dataclasses.replace(TINY_POLICY, obs_horizon=2, action_horizon=5, n_action_steps=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run", config=POLICY)


def _obs(rng, n):
    return {
        **{cam: rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8) for cam in POLICY.cameras},
        "state": rng.normal(size=(n, POLICY.state_dim)).astype(np.float32),
    }


# Shared encoder, instruction words, transformer denoiser and DDIM diffusion head: every input the
# general policy reads on the way to an action goes through the batched path too.
RICH_POLICY = dataclasses.replace(
    POLICY,
    shared_encoder=True,
    text="mean",
    vocab_size=9,
    **TINY_TRANSFORMER_DDIM,
)


@pytest.fixture(scope="module")
def rich_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("rich") / "run", config=RICH_POLICY)


@pytest.fixture(scope="module")
def ptp_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ptp") / "run", config=replace(POLICY, past_steps=1))


@pytest.mark.parametrize(
    ("settings", "frame_stride"),
    [
        (ExecutionSettings(mode="chunk"), 1),
        (ExecutionSettings(mode="temporal_ensemble"), 1),
        (ExecutionSettings(mode="chunk", n_action_steps=1, self_verify_candidates=3), 1),
        (ExecutionSettings(mode="chunk", n_action_steps=1), 2),
        (ExecutionSettings(mode="chunk"), -1),
    ],
    ids=["chunk", "temporal_ensemble", "self_verify", "frame_stride_2", "text_transformer_diffusion"],
)
def test_batched_actions_equal_per_env_actions_whichever_slot_runs_the_episode(
    run_dir, ptp_dir, rich_dir, settings, frame_stride
):
    policy = load_policy(ptp_dir if settings.self_verify_candidates > 1 else run_dir)
    if frame_stride == -1:
        policy, frame_stride = load_policy(rich_dir), 1
    if frame_stride > 1:  # as if trained on history subsampled every `frame_stride` steps
        policy = replace(policy, config=replace(policy.config, frame_stride=frame_stride))
    rng = np.random.default_rng(0)
    steps, seeds = 5, (11, 22, 33)
    observations = [_obs(rng, 1) for _ in range(steps * len(seeds))]
    expected = []
    for e, seed in enumerate(seeds):
        runner = PolicyRunner(policy, execution=settings)
        runner.reset(seed=seed)
        expected.append(
            [runner.act({k: v[0] for k, v in observations[e * steps + t].items()}) for t in range(steps)]
        )
    # Three episodes on four slots, in another order; slot 1 idles and slot 2 joins a step late.
    batched = ActionSelector(policy, 4, settings)
    slot_of = {2: 0, 0: 3, 1: 2}
    got: dict[int, list[np.ndarray]] = {e: [] for e in slot_of}
    for e, slot in slot_of.items():
        if e != 1:
            batched.reset(slot, seeds[e])
    for t in range(steps + 1):
        if t == 1:
            batched.reset(slot_of[1], seeds[1])
        obs = _obs(rng, 4)
        active = np.zeros(4, bool)
        for e, slot in slot_of.items():
            te = t - (e == 1)
            if 0 <= te < steps:
                active[slot] = True
                for k in obs:
                    obs[k][slot] = observations[e * steps + te][k][0]
        actions, seconds = batched.act(obs, active)
        assert not actions[~active].any() and (seconds >= 0).all()
        for e, slot in slot_of.items():
            if active[slot]:
                got[e].append(actions[slot])
    for e in slot_of:
        np.testing.assert_allclose(np.stack(got[e]), np.stack(expected[e]), atol=1e-5)
    assert batched.num_calls <= steps + 1  # one call per step at most, whatever the number of envs


def _config(run_dir, tmp_path, name, **kw):
    base = SweepConfig(
        db=str(tmp_path / f"{name}.db"),
        checkpoints=(str(run_dir),),
        tasks=("cube_on_plate",),
        init_states="0:3",
        settings=(ExecutionSettings(max_steps=6, settle_steps=2),),
        workers=0,
    )
    return replace(base, **kw)


def _outcomes(db):
    with ResultsStore(db) as store:
        return {
            (e["task"], e["init_state_id"], e["seed"]): (e["success"], e["steps"], e["failure_reason"])
            for e in store.episodes()
        }


def test_vectorized_outcomes_equal_sequential_and_rerun_skips_finished(run_dir, tmp_path):
    sequential = _config(run_dir, tmp_path, "seq", backend="local")
    run_sweep(sequential, QUIET)
    vector = _config(run_dir, tmp_path, "vec", backend="vector", num_envs=2, init_states="0:2")
    run_sweep(vector, QUIET)
    with ResultsStore(vector.db) as store:
        stamps = {e["episode_id"]: e["updated_at"] for e in store.episodes()}
        assert all(e["policy_seconds"] > 0 and e["physics_seconds"] > 0 for e in store.episodes())
    again = run_sweep(replace(vector, init_states="0:3"), QUIET)
    assert (again.total, again.skipped) == (3, 2)
    with ResultsStore(vector.db) as store:
        eps = store.episodes()
        assert {e["episode_id"]: e["updated_at"] for e in eps if e["episode_id"] in stamps} == stamps
    seq, vec = _outcomes(sequential.db), _outcomes(vector.db)
    assert len(seq) == 3 and seq == vec
    assert all(steps == 6 and reason.endswith("(cap 6 steps)") for _, steps, reason in vec.values())


def test_worker_crash_fails_only_its_episode(run_dir, tmp_path):
    config = _config(run_dir, tmp_path, "crash", backend="vector", init_states="0:4")
    created = []

    def make_envs(tasks, **kw):
        envs = make_vector(tasks, **kw)
        step, calls = envs.step, deque()

        def step_and_kill_once(actions):
            calls.append(1)
            if len(calls) == 4 and not created:
                created.append(envs.worker_pids[0])
                os.kill(envs.worker_pids[0], signal.SIGKILL)
            return step(actions)

        envs.step = step_and_kill_once
        return envs

    from robopolicy.eval.sweep import plan_sweep

    plan = plan_sweep(config)
    run_vectorized(plan.units, config.db, 2, QUIET, make_envs=make_envs)
    outcomes = _outcomes(config.db)
    assert created and len(outcomes) == 4
    crashed = [r for _, _, r in outcomes.values() if r.startswith("worker_crash")]
    assert len(crashed) == 1 and str(created[0]) in crashed[0]


def test_waves_spread_tasks_over_envs():
    pending = {"a": deque(range(5)), "b": deque(range(1)), "c": deque(), "d": deque(range(3))}
    assert schedule_wave(pending, 2) == ["a", "d"]
    assert schedule_wave(pending, 4) == ["a", "a", "d", "b"]
    assert schedule_wave({"a": deque(range(4))}, 3) == ["a", "a", "a"]
    assert schedule_wave({"a": deque(range(1)), "b": deque()}, 3) == ["a"]


def test_policy_exception_and_env_exception_fail_only_their_episodes(run_dir, tmp_path, monkeypatch):
    from robopolicy.eval.sweep import plan_sweep
    from robopolicy.sim.vector_env import WorkerError

    act = ActionSelector.act
    acts = deque()

    def flaky_act(self, obs, active):
        acts.append(1)
        if len(acts) == 2:
            raise RuntimeError("denoiser exploded")
        return act(self, obs, active)

    monkeypatch.setattr(ActionSelector, "act", flaky_act)

    def make_envs(tasks, **kw):
        envs = make_vector(tasks, **kw)
        step, calls = envs.step, deque()

        def step_then_fail(actions):
            calls.append(1)
            out = step(actions)
            if len(calls) == 3:  # as the vector env reports an exception raised inside worker 0
                raise WorkerError("env 0 (cube_on_plate): RuntimeError: mj_step failed\nTraceback ...")
            return out

        envs.step = step_then_fail
        return envs

    config = _config(
        run_dir, tmp_path, "faults", backend="vector", settings=(ExecutionSettings(max_steps=6),)
    )
    run_vectorized(plan_sweep(config).units, config.db, 2, QUIET, make_envs=make_envs)
    reasons = sorted(r for _, _, r in _outcomes(config.db).values())
    assert reasons == [
        "policy_error: RuntimeError: denoiser exploded",
        "policy_error: RuntimeError: denoiser exploded",
        "sim_error: RuntimeError: mj_step failed",
    ]


def test_in_process_vector_env_follows_the_disabled_autoreset_contract(monkeypatch):
    from robopolicy.sim.in_process_env import make_in_process
    from robopolicy.sim.vector_env import WorkerError

    envs = make_in_process(["cube_on_plate"] * 2, image_size=16, cameras=("agentview",))
    try:
        obs, info = envs.reset(options={"init_state_id": [0, 3]})
        assert obs["agentview"].shape == (2, 16, 16, 3) and info["_success"].all()
        assert envs.instructions[0] and envs.max_steps == (envs._envs[0].max_steps,) * 2
        noop = np.zeros((2, 7), np.float32)
        real_step = type(envs._envs[0]).step
        ends = {0}

        def step(self, action):  # env 0's episode ends at its next step
            obs_, reward, _, truncated, info_ = real_step(self, action)
            return obs_, reward, self is envs._envs[0] and 0 in ends, truncated, info_

        monkeypatch.setattr(type(envs._envs[0]), "step", step)
        _, _, terminated, _, info = envs.step(noop)
        assert list(terminated) == [True, False] and info["_success"].all()
        physics, render = envs.step_times
        assert (physics > 0).all() and (render > 0).all()
        steps_before = envs._envs[0].sim.num_steps
        _, _, terminated, _, info = envs.step(noop)  # env 0 waits for its reset: not stepped, no info
        assert envs._envs[0].sim.num_steps == steps_before
        assert list(terminated) == [True, False] and list(info["_success"]) == [False, True]
        envs.reset(options={"reset_mask": np.array([True, False]), "init_state_id": [1, None]})
        ends.clear()

        def fail(self, action):
            raise RuntimeError("mj_step failed")

        monkeypatch.setattr(type(envs._envs[0]), "step", fail)
        with pytest.raises(WorkerError, match=r"^env 0 \(cube_on_plate\): RuntimeError: mj_step failed"):
            envs.step(noop)
    finally:
        envs.close()
