"""Flow matching over action chunks, as in π0 / openpi.

Convention (openpi): time t runs from data (t=0) to noise (t=1),

    x_t = t·ε + (1 − t)·a,        u = dx_t/dt = ε − a,

the network regresses u, and sampling integrates dx/dt = v(x, t) with Euler steps from t=1 (pure
noise) down to t=0. Training times are drawn from Beta(1.5, 1) — which puts more weight near the
noisy end — and squeezed into [t_min, 1] so that t never reaches exactly 0.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

# Velocity field: (x_t [B, H, A], t [B]) -> v [B, H, A].
VelocityFn = Callable[[Float[Array, "b h a"], Float[Array, " b"]], Float[Array, "b h a"]]


def sample_time(
    key: PRNGKeyArray, batch: int, alpha: float = 1.5, beta: float = 1.0, t_min: float = 0.001
) -> Float[Array, " b"]:
    """Training times t ~ Beta(alpha, beta), rescaled into [t_min, 1]."""
    return jax.random.beta(key, alpha, beta, (batch,)) * (1.0 - t_min) + t_min


def interpolate(
    actions: Float[Array, "b h a"], noise: Float[Array, "b h a"], t: Float[Array, " b"]
) -> Float[Array, "b h a"]:
    """The point x_t = t·ε + (1 − t)·a on the straight path from data to noise."""
    t = t[:, None, None]
    return t * noise + (1.0 - t) * actions


def target_velocity(actions: Float[Array, "b h a"], noise: Float[Array, "b h a"]) -> Float[Array, "b h a"]:
    """The regression target u = ε − a (constant along each straight path)."""
    return noise - actions


def flow_matching_loss(
    predicted: Float[Array, "b h a"],
    actions: Float[Array, "b h a"],
    noise: Float[Array, "b h a"],
    token_mask: Float[Array, "b h"] | Float[Array, " h"] | None = None,
) -> Float[Array, ""]:
    """Masked mean squared error between predicted velocity and ε − a.

    `token_mask` selects which action tokens (chunk positions) count; each selected token contributes
    its per-dimension squared error averaged over the action dimension, and the loss is the mean over
    selected tokens. With no mask every token counts.
    """
    per_token = jnp.mean((predicted - target_velocity(actions, noise)) ** 2, axis=-1)  # [B, H]
    if token_mask is None:
        return jnp.mean(per_token)
    mask = jnp.broadcast_to(token_mask, per_token.shape).astype(per_token.dtype)
    return jnp.sum(per_token * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def euler_sample(
    velocity_fn: VelocityFn, noise: Float[Array, "b h a"], num_steps: int
) -> Float[Array, "b h a"]:
    """Integrate from t=1 (the given noise) to t=0 with `num_steps` equal Euler steps.

    Uses `lax.fori_loop`, so the compiled size does not grow with the step count.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    dt = 1.0 / num_steps
    batch = noise.shape[0]

    def body(i: int, x: Float[Array, "b h a"]) -> Float[Array, "b h a"]:
        t = jnp.full((batch,), 1.0 - i * dt, dtype=x.dtype)
        return x - dt * velocity_fn(x, t)

    return jax.lax.fori_loop(0, num_steps, body, noise)
