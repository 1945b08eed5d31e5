import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robopolicy.errors import UserError
from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.self_verification import candidate_scores, past_token_actions, select_candidate


def _candidates() -> jax.Array:
    # To = 3 (two past tokens), H = 5, A = 2; four candidates whose past tokens are constant c_i.
    levels = jnp.asarray([0.9, -0.5, 0.1, 0.4])
    return jnp.broadcast_to(levels[None, :, None, None], (2, 4, 5, 2))


def test_picks_candidate_consistent_with_history():
    cands = _candidates()
    history = jnp.stack([jnp.full((2, 2), 0.35), jnp.full((2, 2), -0.45)])  # nearest: 0.4 and −0.5
    full = jnp.asarray([True, True])
    chosen, best = select_candidate(cands, history, full, start=0)
    np.testing.assert_array_equal(best, [3, 1])
    np.testing.assert_allclose(chosen[0], 0.4)
    np.testing.assert_allclose(chosen[1], -0.5)
    # Scores are MSEs: candidate 0 vs history 0.35 → (0.9 − 0.35)² = 0.3025.
    np.testing.assert_allclose(candidate_scores(cands, history, 0)[0, 0], 0.3025, rtol=1e-6)


def test_scores_only_the_trained_past_tokens():
    cands = np.zeros((1, 2, 5, 1), np.float32)
    cands[0, 0, 0] = 5.0  # candidate 0 is wrong only on the oldest past token
    cands[0, 1, 1] = 0.5  # candidate 1 is off on the newest past token
    history = jnp.zeros((1, 2, 1))
    full = jnp.asarray([True])
    assert int(select_candidate(jnp.asarray(cands), history, full, start=0)[1][0]) == 1
    # With past_steps = 1 only token 1 was trained and is compared: candidate 0 wins.
    assert int(select_candidate(jnp.asarray(cands), history, full, start=1)[1][0]) == 0


def test_inactive_until_history_full():
    cands = _candidates()
    history = jnp.full((2, 2, 2), -0.5)
    _, best = select_candidate(cands, history, jnp.asarray([False, True]), start=0)
    np.testing.assert_array_equal(best, [0, 1])


def test_past_tokens_stand_for_every_stride_th_executed_action():
    # Stride 3, To = 3: executed steps t−6 … t−1 (entries 0..5); the past tokens stand for t−6, t−3.
    history = jnp.arange(6.0)[None, :, None]
    np.testing.assert_array_equal(past_token_actions(history, 3)[0, :, 0], [0.0, 3.0])
    np.testing.assert_array_equal(past_token_actions(history, 1)[0, :, 0], np.arange(6.0))
    with pytest.raises(ValueError, match="3 steps apart"):
        past_token_actions(jnp.zeros((1, 4, 1)), 3)


CFG = PolicyConfig(
    cameras=("agentview",),
    image_size=16,
    encoder_channels=(8, 16),
    feature_dim=16,
    image_shift=2,
    obs_horizon=3,
    action_horizon=6,
    n_action_steps=1,
    denoiser="transformer",
    transformer_dim=32,
    transformer_layers=1,
    transformer_heads=2,
    head="diffusion",
    diffusion_train_steps=10,
    past_steps=PAST_STEPS_ALL,
    num_candidates=4,
)


def test_policy_samples_candidates_in_one_pass():
    cfg = CFG
    policy = Policy(cfg, rngs=nnx.Rngs(0))
    # Parameters only (no RNG state): the trainer rebuilds the model with nnx.merge(graphdef, params).
    assert len(jax.tree.leaves(nnx.state(policy))) == len(jax.tree.leaves(nnx.state(policy, nnx.Param)))
    rng = np.random.default_rng(0)
    images = {"agentview": jnp.asarray(rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))}
    state = jnp.asarray(rng.normal(size=(2, 3, 9)), jnp.float32)
    cond = policy.encode(images, state)
    cands = policy.sample_candidates(cond, jax.random.key(0), 4)
    assert cands.shape == (2, 4, 6, 7)
    assert float(jnp.std(cands[0], axis=0).mean()) > 1e-3  # candidates differ
    # The chosen chunk is the candidate whose past tokens equal the history.
    history = cands[:, 2, :2]
    chunk, best = policy.sample_verified(images, state, jax.random.key(0), history, jnp.asarray([True, True]))
    np.testing.assert_array_equal(best, [2, 2])
    np.testing.assert_allclose(chunk, cands[:, 2], atol=1e-5)


def test_sample_verified_compares_past_tokens_with_strided_executed_actions():
    # A policy observing every 3rd step (To = 3): its past tokens stand for steps t−6 and t−3, so the
    # history is the last 6 executed actions and entries 0 and 3 are compared. The history below
    # holds candidate 2's past tokens at those entries and candidate 1's as its last two actions:
    # matching consecutive actions (the last To−1) would wrongly pick candidate 1.
    cfg = dataclasses.replace(CFG, frame_stride=3)
    assert cfg.verification_history_length == 6
    policy = Policy(cfg, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    images = {"agentview": jnp.asarray(rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))}
    state = jnp.asarray(rng.normal(size=(2, 3, 9)), jnp.float32)
    cands = policy.sample_candidates(policy.encode(images, state), jax.random.key(0), 4)
    history = jnp.zeros((2, 6, 7))
    history = history.at[:, 0].set(cands[:, 2, 0]).at[:, 3].set(cands[:, 2, 1])
    history = history.at[:, 4].set(cands[:, 1, 0]).at[:, 5].set(cands[:, 1, 1])
    consecutive = select_candidate(cands, history[:, -2:], jnp.asarray([True, True]), 0)[1]
    np.testing.assert_array_equal(consecutive, [1, 1])  # the misreading this test guards against
    full = jnp.asarray([True, False])  # row 1 has not executed 6 actions yet: candidate 0
    chunk, best = policy.sample_verified(images, state, jax.random.key(0), history, full)
    np.testing.assert_array_equal(best, [2, 0])
    np.testing.assert_allclose(chunk[0], cands[0, 2], atol=1e-5)
    with pytest.raises(UserError, match=r"\[B, 6, 7\]"):
        policy.sample_verified(images, state, jax.random.key(0), history[:, -2:], full)
