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
from robopolicy.models.self_verification import (
    Verification,
    candidate_scores,
    compared_tokens,
    inverse_variance_weights,
    past_token_actions,
    select_candidate,
)

EQUAL = Verification()


def _candidates() -> jax.Array:
    # To = 3 (two past tokens), H = 5, A = 2; four candidates whose past tokens are constant c_i.
    levels = jnp.asarray([0.9, -0.5, 0.1, 0.4])
    return jnp.broadcast_to(levels[None, :, None, None], (2, 4, 5, 2))


def _select(cands, history, executed, start=0, stride=1, verification=EQUAL, key=None):
    return select_candidate(
        cands,
        history,
        jnp.asarray(executed),
        stride=stride,
        start=start,
        verification=verification,
        key=key,
    )


def test_picks_candidate_consistent_with_history():
    cands = _candidates()
    history = jnp.stack([jnp.full((2, 2), 0.35), jnp.full((2, 2), -0.45)])  # nearest: 0.4 and −0.5
    chosen = _select(cands, history, [2, 2])
    np.testing.assert_array_equal(chosen.index, [3, 1])
    np.testing.assert_allclose(chosen.chunk[0], 0.4)
    np.testing.assert_allclose(chosen.chunk[1], -0.5)
    np.testing.assert_array_equal(chosen.compared, [2, 2])
    # Scores are MSEs: candidate 0 vs history 0.35 → (0.9 − 0.35)² = 0.3025.
    np.testing.assert_allclose(chosen.scores[0, 0], 0.3025, rtol=1e-6)


def test_scores_only_the_trained_past_tokens():
    cands = np.zeros((1, 2, 5, 1), np.float32)
    cands[0, 0, 0] = 5.0  # candidate 0 is wrong only on the oldest past token
    cands[0, 1, 1] = 0.5  # candidate 1 is off on the newest past token
    history = jnp.zeros((1, 2, 1))
    assert int(_select(jnp.asarray(cands), history, [2], start=0).index[0]) == 1
    # With past_steps = 1 only token 1 was trained and is compared: candidate 0 wins.
    assert int(_select(jnp.asarray(cands), history, [2], start=1).index[0]) == 0


def test_weighted_score_by_hand():
    # One past token, A = 2: the candidate is off by 1 in dimension 0 and by 2 in dimension 1.
    cands = jnp.asarray([[[[1.0, 2.0], [0.0, 0.0]]]])  # [b=1, n=1, h=2, a=2]
    past = jnp.zeros((1, 1, 2))
    mask = jnp.ones((1, 1), bool)
    # Equal weights: (1 + 4) / 2; weights (3, 1): (3·1 + 1·4) / (1 token · 4) = 7/4.
    np.testing.assert_allclose(candidate_scores(cands, past, mask), [[2.5]])
    np.testing.assert_allclose(candidate_scores(cands, past, mask, jnp.asarray([3.0, 1.0])), [[1.75]])
    # Two tokens, the second off by 1 in dimension 0 only: mean over tokens of the weighted means.
    cands2 = jnp.asarray([[[[1.0, 2.0], [1.0, 0.0], [0.0, 0.0]]]])
    past2 = jnp.zeros((1, 2, 2))
    w = jnp.asarray([3.0, 1.0])
    np.testing.assert_allclose(candidate_scores(cands2, past2, jnp.ones((1, 2), bool), w), [[(7 + 3) / 8]])
    # The mask drops the first token: only (3·1) / (1 · 4).
    np.testing.assert_allclose(candidate_scores(cands2, past2, jnp.asarray([[False, True]]), w), [[0.75]])
    # No token compared: score 0.
    np.testing.assert_allclose(candidate_scores(cands2, past2, jnp.zeros((1, 2), bool), w), [[0.0]])


def test_translation_preset_ignores_rotation_and_gripper():
    np.testing.assert_array_equal(Verification(weights="translation").dim_weights(7), [1, 1, 1, 0, 0, 0, 0])
    # Two candidates, one past token, A = 7: candidate 0 is off by 0.1 in x only; candidate 1 has the
    # right translation but rotation jitter of 0.2 in three dims.
    cands = np.zeros((1, 2, 3, 7), np.float32)
    cands[0, 0, 0, 0] = 0.1
    cands[0, 1, 0, 3:6] = 0.2
    history = jnp.zeros((1, 1, 7))
    equal = _select(jnp.asarray(cands), history, [1])
    translation = _select(jnp.asarray(cands), history, [1], verification=Verification(weights="translation"))
    # Equal: 0.01/7 vs 0.12/7 → candidate 0; translation: 0.01/3 vs 0 → candidate 1.
    np.testing.assert_allclose(equal.scores[0], [0.01 / 7, 0.12 / 7], rtol=1e-5)
    np.testing.assert_allclose(translation.scores[0], [0.01 / 3, 0.0], rtol=1e-5, atol=1e-9)
    assert int(equal.index[0]) == 0 and int(translation.index[0]) == 1
    with pytest.raises(ValueError, match=">= 3 action dimensions"):
        Verification(weights="translation").dim_weights(2)


def test_inverse_variance_weights_by_hand():
    # 1/e = (1, 0.25, 0.25), sum 1.5, scaled to sum to 3: (2, 0.5, 0.5).
    np.testing.assert_allclose(inverse_variance_weights(np.asarray([1.0, 4.0, 4.0])), [2.0, 0.5, 0.5])
    np.testing.assert_allclose(inverse_variance_weights(np.full(7, 0.3)), np.ones(7))
    got = Verification(weights="inverse_variance", dim_errors=(1.0, 4.0, 4.0)).dim_weights(3)
    np.testing.assert_allclose(got, [2.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="> 0"):
        inverse_variance_weights(np.asarray([1.0, 0.0]))
    np.testing.assert_array_equal(
        Verification(weights="custom", custom_weights=(1.0, 0.0, 2.0)).dim_weights(3), [1, 0, 2]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": "custom"}, "custom_weights"),
        ({"custom_weights": (1.0, 1.0)}, "custom_weights"),
        ({"weights": "inverse_variance"}, "dim_errors"),
        ({"weights": "custom", "custom_weights": (0.0, 0.0)}, "not all 0"),
        ({"weights": "custom", "custom_weights": (1.0, -1.0)}, ">= 0"),
        ({"weights": "inverse_variance", "dim_errors": (1.0, 0.0)}, "> 0"),
        ({"history": "some"}, "partial or full"),
        ({"selection": "best"}, "score or random"),
        ({"weights": "rotation"}, "unknown"),
    ],
)
def test_verification_options_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Verification(**kwargs)


def test_custom_weights_must_match_the_action_dimension():
    with pytest.raises(ValueError, match=r"custom_weights has 2 values.*7 dimensions"):
        Verification(weights="custom", custom_weights=(1.0, 1.0)).check_action_dim(7)


def test_compared_tokens_with_partial_and_full_history():
    # To = 4 (three past tokens), stride 2: tokens 0, 1, 2 stand for steps 6, 4 and 2 back.
    executed = jnp.asarray([0, 1, 2, 3, 4, 6, 9])
    partial = compared_tokens(executed, 3, 2, start=0)
    np.testing.assert_array_equal(
        partial,
        [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]],
    )
    # Trained on the last two past tokens only (start 1): the full history is 4 executed actions.
    np.testing.assert_array_equal(
        compared_tokens(executed, 3, 2, start=1),
        [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]],
    )
    np.testing.assert_array_equal(
        compared_tokens(executed, 3, 2, start=1, history="full"),
        [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 1, 1], [0, 1, 1]],
    )


def test_partial_history_scores_the_executed_tokens_and_takes_candidate_0_without_any():
    cands = _candidates()
    # The executed action 2 steps back (token 0) is 0.9, the one 1 step back (token 1) is −0.5.
    history = jnp.broadcast_to(jnp.asarray([[0.9, 0.9], [-0.5, -0.5]])[None], (2, 2, 2))
    one = _select(cands, history, [1, 0])
    np.testing.assert_array_equal(one.index, [1, 0])  # row 0: token 1 only; row 1: nothing executed
    np.testing.assert_array_equal(one.compared, [1, 0])
    # Row 0's score of candidate 2 (0.1) is its error on token 1 alone: (0.1 + 0.5)² = 0.36.
    np.testing.assert_allclose(one.scores[0, 2], 0.36, rtol=1e-6)
    np.testing.assert_allclose(one.chunk[1], cands[1, 0])
    # The old behaviour waits for the full history: candidate 0 for both rows.
    full = _select(cands, history, [1, 0], verification=Verification(history="full"))
    np.testing.assert_array_equal(full.index, [0, 0])
    np.testing.assert_array_equal(full.compared, [0, 0])


def test_random_selection_draws_uniformly():
    # 4000 rows of N = 4 identical-score candidates, one draw each.
    n, rows = 4, 4000
    cands = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[None, :, None, None], (rows, n, 3, 1))
    history = jnp.zeros((rows, 2, 1))
    random = Verification(selection="random")
    chosen = _select(cands, history, jnp.full((rows,), 2), verification=random, key=jax.random.key(0))
    counts = np.bincount(np.asarray(chosen.index), minlength=n)
    expected = rows / n
    sigma = np.sqrt(rows * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(counts - expected) < 4 * sigma), counts
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 16.27, (counts, chi2)  # χ²(3) at p = 0.001
    np.testing.assert_array_equal(np.asarray(chosen.chunk[:, 0, 0]), np.asarray(chosen.index))
    # Ignores the scores (candidate 0 matches the history exactly), and also draws without history.
    blind = _select(cands, history, jnp.zeros((rows,), jnp.int32), verification=random, key=jax.random.key(1))
    assert len(np.unique(np.asarray(blind.index))) == n
    with pytest.raises(ValueError, match="needs a key"):
        _select(cands, history, jnp.full((rows,), 2), verification=random)


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


def _inputs(rng: np.random.Generator) -> tuple[dict, jax.Array]:
    images = {"agentview": jnp.asarray(rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))}
    return images, jnp.asarray(rng.normal(size=(2, 3, 9)), jnp.float32)


def test_policy_samples_candidates_in_one_pass():
    cfg = CFG
    policy = Policy(cfg, rngs=nnx.Rngs(0))
    # Parameters only (no RNG state): the trainer rebuilds the model with nnx.merge(graphdef, params).
    assert len(jax.tree.leaves(nnx.state(policy))) == len(jax.tree.leaves(nnx.state(policy, nnx.Param)))
    images, state = _inputs(np.random.default_rng(0))
    cond = policy.encode(images, state)
    cands = policy.sample_candidates(cond, jax.random.key(0), 4)
    assert cands.shape == (2, 4, 6, 7)
    assert float(jnp.std(cands[0], axis=0).mean()) > 1e-3  # candidates differ
    # The chosen chunk is the candidate whose past tokens equal the history.
    history = cands[:, 2, :2]
    chosen = policy.sample_verified(images, state, jax.random.key(0), history, jnp.asarray([2, 2]))
    np.testing.assert_array_equal(chosen.index, [2, 2])
    np.testing.assert_allclose(chosen.chunk, cands[:, 2], atol=1e-5)
    np.testing.assert_allclose(chosen.scores[:, 2], 0.0, atol=1e-9)
    # Random selection draws from the same candidates.
    random = policy.sample_verified(
        images,
        state,
        jax.random.key(0),
        history,
        jnp.asarray([2, 2]),
        verification=Verification(selection="random"),
    )
    for row in range(2):
        np.testing.assert_allclose(random.chunk[row], cands[row, int(random.index[row])], atol=1e-5)


@pytest.mark.parametrize("head", ["diffusion", "flow"])
def test_candidate_0_shares_the_noise_of_a_single_sample(head):
    # The N = 1 control: with the same key, one candidate is exactly candidate 0 of four (DDPM draws
    # noise at every denoising step too), and the plain sample.
    policy = Policy(dataclasses.replace(CFG, head=head), rngs=nnx.Rngs(0))
    images, state = _inputs(np.random.default_rng(1))
    key = jax.random.key(7)
    history, executed = jnp.zeros((2, 2, 7)), jnp.asarray([0, 0])
    single = policy.sample_verified(images, state, key, history, executed, num_candidates=1)
    four = policy.sample_candidates(policy.encode(images, state), key, 4)
    np.testing.assert_allclose(four[:, 0], single.chunk, atol=1e-5)
    np.testing.assert_allclose(policy.sample(images, state, key), single.chunk, atol=1e-6)
    assert float(jnp.abs(four[:, 1] - four[:, 0]).max()) > 1e-2  # the others draw other noise
    # With nothing executed yet, verification takes candidate 0: the N = 1 chunk.
    verified = policy.sample_verified(images, state, key, history, executed, num_candidates=4)
    np.testing.assert_array_equal(verified.index, [0, 0])
    np.testing.assert_allclose(verified.chunk, single.chunk, atol=1e-5)


def test_sample_verified_compares_past_tokens_with_strided_executed_actions():
    # A policy observing every 3rd step (To = 3): its past tokens stand for steps t−6 and t−3, so the
    # history is the last 6 executed actions and entries 0 and 3 are compared. The history below
    # holds candidate 2's past tokens at those entries and candidate 1's as its last two actions:
    # matching consecutive actions (the last To−1) would wrongly pick candidate 1.
    cfg = dataclasses.replace(CFG, frame_stride=3)
    assert cfg.verification_history_length == 6
    policy = Policy(cfg, rngs=nnx.Rngs(0))
    images, state = _inputs(np.random.default_rng(0))
    cands = policy.sample_candidates(policy.encode(images, state), jax.random.key(0), 4)
    history = jnp.zeros((2, 6, 7))
    history = history.at[:, 0].set(cands[:, 2, 0]).at[:, 3].set(cands[:, 2, 1])
    history = history.at[:, 4].set(cands[:, 1, 0]).at[:, 5].set(cands[:, 1, 1])
    consecutive = _select(cands, history[:, -2:], [2, 2]).index
    np.testing.assert_array_equal(consecutive, [1, 1])  # the misreading this test guards against
    executed = jnp.asarray([6, 2])  # row 1 has executed 2 actions: no past token's step yet
    chosen = policy.sample_verified(images, state, jax.random.key(0), history, executed)
    np.testing.assert_array_equal(chosen.index, [2, 0])
    np.testing.assert_array_equal(chosen.compared, [2, 0])
    np.testing.assert_allclose(chosen.chunk[0], cands[0, 2], atol=1e-5)
    with pytest.raises(UserError, match=r"\[B, 6, 7\]"):
        policy.sample_verified(images, state, jax.random.key(0), history[:, -2:], executed)
    with pytest.raises(UserError, match="custom_weights has 3 values"):
        policy.sample_verified(
            images,
            state,
            jax.random.key(0),
            history,
            executed,
            verification=Verification(weights="custom", custom_weights=(1.0, 1.0, 1.0)),
        )
