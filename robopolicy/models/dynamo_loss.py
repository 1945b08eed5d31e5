"""The DynaMo objective as pure functions: how the dynamics models see the views, the next-embedding
cosine loss and the covariance regulariser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

Views = Literal["per_view", "concatenated"]
Dynamics = Literal["inverse_forward", "forward_only", "inverse_only"]
# A causal sequence model: [N, T, D_in] → [N, T, D_out], output t seeing inputs 0…t only.
StepModel = Callable[[Float[Array, "n t i"]], Float[Array, "n t o"]]


def to_steps(z: Float[Array, "b w v e"], views: Views) -> Float[Array, "n w d"]:
    """The sequences the dynamics models run on: per view, [B·V, W, E] (view-major within each
    batch row); concatenated, [B, W, V·E]."""
    b, w, v, e = z.shape
    if views == "per_view":
        return jnp.swapaxes(z, 1, 2).reshape(b * v, w, e)
    return z.reshape(b, w, v * e)


def from_steps(steps: Float[Array, "n t d"], b: int, v: int, views: Views) -> Float[Array, "b t v e"]:
    """Inverse of `to_steps`: [N, T, D] → [B, T, V, E]."""
    t = steps.shape[1]
    if views == "per_view":
        return jnp.swapaxes(steps.reshape(b, v, t, -1), 1, 2)
    return steps.reshape(b, t, v, -1)


def predict_next(
    z: Float[Array, "b w v e"], inverse: StepModel, forward: StepModel, views: Views, dynamics: Dynamics
) -> tuple[Float[Array, "b w1 v e"], Float[Array, "n w1 l"]]:
    """Predicted z_{1…W−1} [B, W−1, V, E] and the latent actions l_{1…W−1} [N, W−1, L].

    inverse_forward (DynaMo): l_{t+1} = inverse(z_{0…t+1})'s output at t+1, then
    ẑ_{t+1} = forward((z_s, l_{s+1}) for s ≤ t). forward_only: ẑ_{t+1} = forward(z_{0…t}), L = 0.
    inverse_only: ẑ_{t+1} = forward(l_{t+1}), `forward` seeing the latent action alone.
    """
    b, w, v, _ = z.shape
    steps = to_steps(z, views)
    if dynamics == "forward_only":
        latents = jnp.zeros((steps.shape[0], w - 1, 0), steps.dtype)
        pred = forward(steps[:, :-1])
    else:
        latents = inverse(steps)[:, 1:]
        pred = forward(
            latents if dynamics == "inverse_only" else jnp.concatenate([steps[:, :-1], latents], -1)
        )
    return from_steps(pred, b, v, views), latents


def cosine_prediction_loss(
    pred: Float[Array, "*b e"], target: Float[Array, "*b e"], eps: float = 1e-8, stop_gradient: bool = True
) -> Float[Array, ""]:
    """mean(1 − cos(pred, stopgrad(target))) over every leading index (steps, views, batch).

    With the same number of steps per view, the mean over views of each view's mean loss, as the
    reference sums `loss / V` over views. The stop-gradient is here, not left to the caller, so no
    gradient can reach the target branch; `stop_gradient=False` lets it through (an ablation).
    """
    if stop_gradient:
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
