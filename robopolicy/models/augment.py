"""Image augmentation applied on device inside the jitted train step (never at evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

# ITU-R BT.601 luma weights, the usual grey for saturation and contrast.
_LUMA = (0.299, 0.587, 0.114)


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


@dataclass(frozen=True)
class ColorJitter:
    """Maximum relative change of each image property; factors are drawn from [1 − x, 1 + x].

    All zero (the default) leaves images untouched.

    Attributes:
        brightness: scales pixel values.
        contrast: scales the distance from the image's mean grey.
        saturation: scales the distance from each pixel's grey.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"ColorJitter: {name} must be in [0, 1), got {value!r}")

    @property
    def enabled(self) -> bool:
        return max(self.brightness, self.contrast, self.saturation) > 0


def _factors(key: PRNGKeyArray, n: int, amount: float) -> Float[Array, "n 1 1 1"]:
    return jax.random.uniform(key, (n, 1, 1, 1), minval=1.0 - amount, maxval=1.0 + amount)


def color_jitter(
    images: UInt8[Array, "n h w 3"], key: PRNGKeyArray, jitter: ColorJitter
) -> UInt8[Array, "n h w 3"]:
    """Brightness, then contrast, then saturation, each with its own factor per image; uint8 in and out.

    The order is fixed so a key gives one result; values are rounded and clipped to [0, 255].
    """
    if not jitter.enabled:
        return images
    n = images.shape[0]
    kb, kc, ks = jax.random.split(key, 3)
    x = images.astype(jnp.float32)
    luma = jnp.asarray(_LUMA, jnp.float32)
    x = x * _factors(kb, n, jitter.brightness)
    mean_grey = jnp.mean(x @ luma, axis=(1, 2))[:, None, None, None]
    x = mean_grey + (x - mean_grey) * _factors(kc, n, jitter.contrast)
    grey = (x @ luma)[..., None]
    x = grey + (x - grey) * _factors(ks, n, jitter.saturation)
    return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def jitter_batch_images(
    images: dict[str, UInt8[Array, "b to h w 3"]], key: PRNGKeyArray, jitter: ColorJitter
) -> dict[str, UInt8[Array, "b to h w 3"]]:
    """Colour jitter on every camera of a training batch; the frames of one window share factors."""
    if not jitter.enabled:
        return images
    out = {}
    for i, (cam, frames) in enumerate(sorted(images.items())):
        to = frames.shape[1]
        # One factor per window: tile the window's frames side by side so they get the same draw.
        tiled = jnp.concatenate([frames[:, t] for t in range(to)], axis=2)
        jittered = color_jitter(tiled, jax.random.fold_in(key, i), jitter)
        out[cam] = jnp.stack(jnp.split(jittered, to, axis=2), axis=1)
    return out
