"""Image augmentation applied on device inside the jitted train step (never at evaluation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, UInt8


def random_shift(images: UInt8[Array, "n h w c"], key: PRNGKeyArray, pad: int) -> UInt8[Array, "n h w c"]:
    """Shift each image by up to ±`pad` pixels in x and y, filling with its edge pixels.

    The random-crop augmentation of Diffusion Policy (crop 76 of 84) in shift form: the output keeps
    the input size, so the evaluation path needs no centre crop.
    """
    if pad <= 0:
        return images
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)

    def crop(img: UInt8[Array, "hp wp c"], off: Array) -> UInt8[Array, "h w c"]:
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)
