"""A policy queried on a recorded episode: token steps, recorded past actions, windows, chunks; and the
closed-loop runner's self-verification matching past tokens to the executed actions they stand for
under a frame stride."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from eval_fixtures import TINY_POLICY
from flax import nnx

from robopolicy.data.normalization import NormalizationStats
from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.recorded_windows import (
    chunk_steps,
    past_token_errors,
    recorded_past_actions,
    recorded_window,
    sample_chunks,
)
from robopolicy.models.policy import Policy
from robopolicy.train.loaded_policy import LoadedPolicy

# To=3, H=5: chunk tokens 0, 1 are past actions, token 2 is the current step.
PTP_POLICY = dataclasses.replace(
    TINY_POLICY, cameras=("wrist",), obs_horizon=3, action_horizon=5, n_action_steps=1, past_steps=-1
)
T = 12
ACTIONS = np.arange(T * 7, dtype=np.float32).reshape(T, 7) / 10.0  # step s, dim d → (7s + d) / 10
STATES = np.arange(T * 9, dtype=np.float32).reshape(T, 9)


def _policy(stride: int, config=PTP_POLICY, params=None) -> LoadedPolicy:
    stats = NormalizationStats.fit(ACTIONS, STATES)
    return LoadedPolicy(
        dataclasses.replace(config, frame_stride=stride), params, stats, {}, Path("unused"), 0
    )


def test_chunk_steps_follow_the_training_windows():
    # README's example: To=3, H=5, stride 4 holds actions t−8, t−4, t, t+1, t+2.
    assert _policy(4).config.obs_horizon == 3
    np.testing.assert_array_equal(chunk_steps(_policy(4), 10), [2, 6, 10, 11, 12])
    np.testing.assert_array_equal(chunk_steps(_policy(1), 0), [-2, -1, 0, 1, 2])


def test_recorded_past_actions_are_the_normalized_actions_at_the_past_token_steps():
    policy = _policy(2)
    got = recorded_past_actions(policy, ACTIONS, 7)  # past tokens at steps 3 and 5
    np.testing.assert_allclose(got, policy.stats.action.normalize(ACTIONS[[3, 5]]), rtol=1e-6)
    # Only the last past token with past_steps=1.
    one = _policy(2, dataclasses.replace(PTP_POLICY, past_steps=1))
    np.testing.assert_allclose(
        recorded_past_actions(one, ACTIONS, 7), one.stats.action.normalize(ACTIONS[[5]]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="outside"):
        recorded_past_actions(policy, ACTIONS, 3)  # step 3 − 4 < 0
    with pytest.raises(ValueError, match="no past tokens"):
        recorded_past_actions(_policy(2, dataclasses.replace(PTP_POLICY, past_steps=0)), ACTIONS, 7)


@pytest.fixture(scope="module")
def params():
    # Initialised in one compiled call: eager initialisation compiles every initializer separately.
    return nnx.state(nnx.jit(lambda: Policy(PTP_POLICY, rngs=nnx.Rngs(0)))(), nnx.Param)


def _observations(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    return [
        {
            **{cam: rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for cam in PTP_POLICY.cameras},
            "state": STATES[s],
        }
        for s in range(T)
    ]


def test_recorded_window_pads_the_start_like_training(params):
    policy = _policy(2, params=params)
    obs = _observations(np.random.default_rng(0))
    batch = recorded_window(policy, obs, 3)  # frames at steps −1 (padded with step 0), 1, 3
    np.testing.assert_array_equal(batch["obs_valid"], [[False, True, True]])
    np.testing.assert_allclose(batch["state"][0], policy.stats.state.normalize(STATES[[0, 1, 3]]), rtol=1e-6)
    np.testing.assert_array_equal(batch["images"]["wrist"][0, 2], obs[3]["wrist"])
    with pytest.raises(ValueError, match="outside"):
        recorded_window(policy, obs, T)


def test_sample_chunks_shape_and_determinism(params):
    policy = _policy(2, params=params)
    batch = recorded_window(policy, _observations(np.random.default_rng(1)), 6)
    a = sample_chunks(policy, batch, jax.random.key(0), 3)
    b = sample_chunks(policy, batch, jax.random.key(0), 3)
    assert a.shape == (3, 5, 7)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])  # candidates draw different noise


def test_runner_verifies_past_tokens_against_every_stride_th_executed_action(params):
    # Stride 3: the chunk planned at step t has past tokens for steps t−6 and t−3, so the runner keeps
    # the last 6 executed actions and the candidate matching entries 0 and 3 of them is executed.
    # From step 3 on the newest token's step has been executed and is compared alone (partial
    # history); from step 6 on both are. Each plan's choice goes into the slot's selection log.
    policy = _policy(3, params=params)
    obs = _observations(np.random.default_rng(2))
    selector = ActionSelector(policy, 1, ExecutionSettings(n_action_steps=1, self_verify_candidates=4))
    selector.reset(0, seed=5)
    key = jax.random.key(5)  # the slot's key, split once per plan as the runner does
    executed, differs, expected_log = [], [], []
    for t in range(T):
        action = selector.act({k: v[None] for k, v in obs[t].items()}, np.ones(1, bool))[0][0]
        key, sub = jax.random.split(key)
        candidates = sample_chunks(policy, recorded_window(policy, obs, t), sub, 4)
        tokens = [j for j in (0, 1) if t >= (2 - j) * 3]  # token j stands for step t − (2 − j)·3
        best, scores = 0, np.zeros(4)
        if tokens:
            recent = policy.stats.action.normalize(np.stack(executed[-6:]))
            past = np.concatenate([np.zeros((6 - len(recent), 7)), recent])[::3]
            scores = np.mean((candidates[:, tokens] - past[tokens]) ** 2, axis=(1, 2))
            best = int(np.argmin(scores))
        if len(tokens) == 2:
            consecutive = int(np.argmin(np.mean((candidates[:, :2] - recent[-2:]) ** 2, axis=(1, 2))))
            differs.append(best != consecutive)
        np.testing.assert_allclose(action, policy.stats.action.unnormalize(candidates[best])[2], atol=1e-4)
        expected_log.append((t, best, len(tokens), scores))
        executed.append(action)
    assert any(differs)  # the consecutive reading would have executed other candidates
    log = selector.selection_log(0)
    assert [(e["t"], e["chosen"], e["compared"]) for e in log] == [x[:3] for x in expected_log]
    np.testing.assert_allclose([e["scores"] for e in log], [x[3] for x in expected_log], rtol=1e-3, atol=1e-6)
    assert ActionSelector(policy, 1, ExecutionSettings()).selection_log(0) is None  # without verification


def test_past_token_errors_per_dimension(params):
    # Two recorded episodes; the per-dimension error is the mean, over usable steps and compared
    # tokens, of the squared error of one sampled chunk per step (the same key scheme recomputed here).
    policy = _policy(2, params=params)
    rng = np.random.default_rng(3)
    episodes = [{"observations": _observations(rng), "actions": ACTIONS[: T - k]} for k in range(2)]
    got = past_token_errors(policy, episodes, seed=4)
    assert got.shape == (7,)
    squares = []
    for k, ep in enumerate(episodes):
        for t in range(4, len(ep["actions"])):  # the oldest past token, 4 steps back, inside the episode
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(4), k), t)
            chunk = sample_chunks(policy, recorded_window(policy, ep["observations"], t), key)[0]
            squares.append((chunk[:2] - policy.stats.action.normalize(ep["actions"][[t - 4, t - 2]])) ** 2)
    np.testing.assert_allclose(got, np.concatenate(squares).mean(axis=0), rtol=1e-5)
    # Trained on the newest past token only: "trained" compares it alone, from step 2 on.
    one = _policy(2, dataclasses.replace(PTP_POLICY, past_steps=1), params=params)
    newest = []
    for t in range(2, T):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 0), t)
        chunk = sample_chunks(one, recorded_window(one, episodes[0]["observations"], t), key)[0]
        newest.append((chunk[1] - one.stats.action.normalize(ACTIONS[t - 2])) ** 2)
    np.testing.assert_allclose(past_token_errors(one, episodes[:1]), np.mean(newest, axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="longer than"):
        past_token_errors(policy, [{"observations": episodes[0]["observations"], "actions": ACTIONS[:4]}])
