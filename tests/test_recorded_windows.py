"""A policy queried on a recorded episode: token steps, recorded past actions, windows, chunks; and
self-verification matching past tokens to the executed actions they stand for under a frame stride."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from eval_fixtures import TINY_POLICY
from flax import nnx

from robopolicy.data.normalization import NormalizationStats
from robopolicy.eval.policy_runner import LoadedPolicy, choose_chunk, executed_history_length
from robopolicy.eval.recorded_windows import (
    chunk_steps,
    recorded_past_actions,
    recorded_window,
    sample_chunks,
)
from robopolicy.models.policy import Policy

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


def test_self_verification_matches_every_stride_th_executed_action():
    policy = _policy(3)
    past, stride = 2, 3
    assert executed_history_length(past, stride) == 6
    assert executed_history_length(0, 3) == 1
    # Executed steps t−6 … t−1; the past tokens stand for t−6 and t−3 (entries 0 and 3).
    executed = [np.full(7, float(i), np.float32) for i in range(6)]
    right = np.zeros((5, 7), np.float32)
    right[:2] = [executed[0], executed[3]]
    newest = np.zeros((5, 7), np.float32)
    newest[:2] = [executed[4], executed[5]]  # what matching the last `past` actions would pick
    chosen = choose_chunk(policy, np.stack([newest, right]), executed, past, stride)
    np.testing.assert_allclose(chosen, policy.stats.action.unnormalize(right), rtol=1e-6)
    # Not yet past·stride executed actions: the first candidate.
    chosen = choose_chunk(policy, np.stack([newest, right]), executed[:4], past, stride)
    np.testing.assert_allclose(chosen, policy.stats.action.unnormalize(newest), rtol=1e-6)
