"""The DynaMo objective as pure functions: next-embedding cosine loss and covariance regulariser."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def cosine_prediction_loss(
    pred: Float[Array, "*b e"], target: Float[Array, "*b e"], eps: float = 1e-8
) -> Float[Array, ""]:
    """mean(1 − cos(pred, stopgrad(target))) over every leading index (steps, views, batch).

    The stop-gradient is here, not left to the caller, so no gradient can reach the target branch.
    """
    target = jax.lax.stop_gradient(target)
    dot = jnp.sum(pred * target, axis=-1)
    norms = jnp.linalg.norm(pred, axis=-1) * jnp.linalg.norm(target, axis=-1)
    return jnp.mean(1.0 - dot / jnp.maximum(norms, eps))


def covariance_regularizer(z: Float[Array, "n e"]) -> Float[Array, ""]:
    """mean over the E·(E−1) off-diagonal entries of cov(z)², with the unbiased (n−1) covariance.

    Pushes embedding dimensions to decorrelate, which keeps the encoder from collapsing to a
    constant or a low-dimensional code that a dynamics model would predict trivially.
    """
    n, e = z.shape
    centred = z - jnp.mean(z, axis=0, keepdims=True)
    cov = centred.T @ centred / (n - 1)
    off = cov - jnp.diag(jnp.diag(cov))
    return jnp.sum(off**2) / (e * (e - 1))


def target_ema_decay(step: Int[Array, ""] | int, total_steps: int, start: float = 0.99) -> Float[Array, ""]:
    """EMA decay of the target encoder: `start` at step 0, cosine-annealed to 1 at `total_steps`."""
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / max(total_steps, 1), 0.0, 1.0)
    return 1.0 - (1.0 - start) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0
