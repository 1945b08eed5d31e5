import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.models import flow_matching as fm


def test_sample_time_range_and_skew():
    t = np.asarray(fm.sample_time(jax.random.key(0), 20000, 1.5, 1.0, t_min=0.001))
    assert t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1) has mean 1.5 / 2.5 = 0.6; rescaled: 0.6 * 0.999 + 0.001.
    assert abs(t.mean() - (0.6 * 0.999 + 0.001)) < 0.01


def test_interpolate_and_target_hand_computed():
    a = jnp.asarray([[[1.0, -2.0]]])
    eps = jnp.asarray([[[3.0, 0.0]]])
    t = jnp.asarray([0.25])
    # x_t = t·ε + (1 − t)·a = [0.75 + 0.75, 0 − 1.5]
    np.testing.assert_allclose(fm.interpolate(a, eps, t), [[[1.5, -1.5]]])
    np.testing.assert_allclose(fm.target_velocity(a, eps), [[[2.0, 2.0]]])
    np.testing.assert_allclose(fm.interpolate(a, eps, jnp.asarray([0.0])), a)
    np.testing.assert_allclose(fm.interpolate(a, eps, jnp.asarray([1.0])), eps)


def test_loss_hand_computed_with_mask():
    a = jnp.zeros((1, 3, 2))
    eps = jnp.ones((1, 3, 2))  # target u = 1 everywhere
    pred = jnp.asarray([[[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]]])
    # per-token MSE: [0, (4 + 0)/2 = 2, (1 + 1)/2 = 1]
    assert float(fm.flow_matching_loss(pred, a, eps)) == pytest.approx(1.0)
    assert float(fm.flow_matching_loss(pred, a, eps, jnp.asarray([0.0, 1.0, 1.0]))) == pytest.approx(1.5)
    assert float(fm.flow_matching_loss(pred, a, eps, jnp.asarray([1.0, 0.0, 0.0]))) == pytest.approx(0.0)


def test_euler_recovers_point_mass():
    # For a single data point a, the exact velocity field is v(x, t) = (x − a) / t; straight paths make
    # Euler integration exact, so any noise lands on a.
    a = jnp.asarray([[[0.5, -1.0, 2.0]]])
    noise = jax.random.normal(jax.random.key(1), (4, 1, 3))
    out = fm.euler_sample(lambda x, t: (x - a) / t[:, None, None], noise, num_steps=10)
    np.testing.assert_allclose(out, jnp.broadcast_to(a, out.shape), atol=1e-5)


def test_euler_constant_field_hand_computed():
    # dx/dt = 2 integrated from t=1 to t=0 moves x by −2, whatever the step count.
    x0 = jnp.zeros((1, 1, 1))
    for steps in (1, 3, 10):
        out = fm.euler_sample(lambda x, t: jnp.full_like(x, 2.0), x0, steps)
        np.testing.assert_allclose(out, -2.0, atol=1e-6)


def test_euler_rejects_zero_steps():
    with pytest.raises(ValueError, match="num_steps"):
        fm.euler_sample(lambda x, t: x, jnp.zeros((1, 1, 1)), 0)


def test_random_shift_moves_content_within_pad():
    from robopolicy.models.augment import random_shift

    img = np.zeros((1, 8, 8, 1), np.uint8)
    img[0, 4, 4, 0] = 255
    imgs = jnp.asarray(np.repeat(img, 64, axis=0))
    out = np.asarray(random_shift(imgs, jax.random.key(0), pad=2))
    assert out.shape == imgs.shape and out.dtype == np.uint8
    rows, cols = np.nonzero(out[..., 0] == 255)[1:]
    assert set(rows.tolist()) <= set(range(2, 7)) and set(cols.tolist()) <= set(range(2, 7))
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5  # shifts actually vary
    np.testing.assert_array_equal(random_shift(imgs, jax.random.key(0), pad=0), imgs)
