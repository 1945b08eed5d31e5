"""On-device augmentation: shapes, determinism for a key, identity when off, and the colour maths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.models.augment import ColorJitter, color_jitter, jitter_batch_images, random_shift


def _images(n: int = 3) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8))


def test_color_jitter_shapes_determinism_and_identity_when_off():
    images = _images()
    jitter = ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)
    fn = jax.jit(color_jitter, static_argnums=2)
    a, b = fn(images, jax.random.key(0), jitter), fn(images, jax.random.key(0), jitter)
    c = fn(images, jax.random.key(1), jitter)
    assert a.shape == images.shape and a.dtype == jnp.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(fn(images, jax.random.key(0), ColorJitter()), images)


def test_brightness_only_scales_pixels():
    images = jnp.full((1, 2, 2, 3), 100, jnp.uint8)
    out = color_jitter(images, jax.random.key(3), ColorJitter(brightness=0.5))
    value = int(out[0, 0, 0, 0])
    assert 50 <= value <= 150 and np.all(np.asarray(out) == value)  # one factor for the whole image


def test_saturation_leaves_grey_pixels_grey():
    grey = jnp.full((2, 4, 4, 3), 77, jnp.uint8)
    out = color_jitter(grey, jax.random.key(0), ColorJitter(saturation=0.9))
    np.testing.assert_array_equal(out, grey)


def test_batch_jitter_shares_factors_within_a_window():
    frames = jnp.full((2, 3, 4, 4, 3), 120, jnp.uint8)  # [B, To, H, W, 3], all frames equal
    out = jitter_batch_images({"cam": frames}, jax.random.key(5), ColorJitter(brightness=0.4))["cam"]
    assert out.shape == frames.shape
    np.testing.assert_array_equal(out[:, 0], out[:, 2])  # same factor for every frame of a window
    assert int(out[0, 0, 0, 0, 0]) != int(out[1, 0, 0, 0, 0])  # different windows, different factors


def test_random_shift_is_deterministic_for_a_key_and_identity_without_pad():
    images = _images()
    a = jax.jit(random_shift, static_argnums=2)(images, jax.random.key(0), 2)
    np.testing.assert_array_equal(a, random_shift(images, jax.random.key(0), 2))
    assert a.shape == images.shape
    np.testing.assert_array_equal(random_shift(images, jax.random.key(0), 0), images)


def test_jitter_config_validation():
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=1.5)
