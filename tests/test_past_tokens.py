import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.models.past_tokens import PAST_STEPS_ALL, loss_token_mask, masked_token_mse, past_token_start


def test_mask_plain_k_and_all():
    # To = 4, H = 8: current action at index 3.
    np.testing.assert_array_equal(loss_token_mask(4, 8, 0), [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(loss_token_mask(4, 8, 2), [0, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(loss_token_mask(4, 8, PAST_STEPS_ALL), [1] * 8)
    np.testing.assert_array_equal(loss_token_mask(4, 8, 3), [1] * 8)
    np.testing.assert_array_equal(loss_token_mask(1, 4, PAST_STEPS_ALL), [1, 1, 1, 1])
    assert past_token_start(16, PAST_STEPS_ALL) == 0 and past_token_start(16, 0) == 15
    assert past_token_start(16, 5) == 10
    with pytest.raises(ValueError, match="past_steps"):
        past_token_start(4, -2)


def test_mask_combines_action_valid():
    valid = jnp.asarray([[True] * 6, [False, False, True, True, True, False]])
    mask = loss_token_mask(3, 6, 1, valid)
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]])


def test_only_masked_tokens_contribute_hand_computed():
    # Token errors (mean over 2 dims): token 0 → 100, token 1 → 1, token 2 → 4, token 3 → 9.
    target = jnp.zeros((1, 4, 2))
    pred = jnp.asarray([[[10.0, 10.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    # To = 3, plain: tokens [2:] → (4 + 9) / 2.
    assert float(masked_token_mse(pred, target, loss_token_mask(3, 4, 0))) == pytest.approx(6.5)
    # PTP k = 1: tokens [1:] → (1 + 4 + 9) / 3.
    assert float(masked_token_mse(pred, target, loss_token_mask(3, 4, 1))) == pytest.approx(14 / 3)
    # PTP all, with the last token invalid (past the episode end): (100 + 1 + 4) / 3.
    valid = jnp.asarray([[True, True, True, False]])
    assert float(
        masked_token_mse(pred, target, loss_token_mask(3, 4, PAST_STEPS_ALL, valid))
    ) == pytest.approx(35.0)
    # Changing a masked-out token changes nothing.
    pred2 = pred.at[0, 0].set(-50.0)
    assert float(masked_token_mse(pred2, target, loss_token_mask(3, 4, 0))) == pytest.approx(6.5)
