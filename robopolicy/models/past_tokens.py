"""Past-Token Prediction (Torne et al. 2025): which action tokens of a chunk the loss covers.

The chunk has length H and starts at the first observation step, so index To−1 is the current action
and indices [0, To−1) are actions already executed. The plain loss covers [To−1:]; PTP adds the last
`past_steps` past tokens ([To−1−k:]), or all of them.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

PAST_STEPS_ALL = -1  # `past_steps` value meaning "every past token in the chunk"


def past_token_start(obs_horizon: int, past_steps: int) -> int:
    """Index of the first chunk token the loss covers: To−1−k, clamped at 0; k = To−1 for ALL."""
    if past_steps < PAST_STEPS_ALL:
        raise ValueError(f"past_steps must be >= 0 or {PAST_STEPS_ALL} (all), got {past_steps}")
    k = obs_horizon - 1 if past_steps == PAST_STEPS_ALL else past_steps
    return max(obs_horizon - 1 - k, 0)


def loss_token_mask(
    obs_horizon: int,
    action_horizon: int,
    past_steps: int,
    action_valid: Bool[Array, "b h"] | None = None,
) -> Float[Array, "b h"] | Float[Array, " h"]:
    """1.0 where a chunk token contributes to the loss: [To−1−k:] and, when given, `action_valid`.

    Without `action_valid` the mask is [H]; with it, [B, H].
    """
    start = past_token_start(obs_horizon, past_steps)
    mask = (jnp.arange(action_horizon) >= start).astype(jnp.float32)
    if action_valid is None:
        return mask
    return mask[None] * action_valid.astype(jnp.float32)


def masked_token_mse(
    predicted: Float[Array, "b h a"],
    target: Float[Array, "b h a"],
    mask: Float[Array, "b h"] | Float[Array, " h"],
) -> Float[Array, ""]:
    """Uniform masked MSE: per-token mean over the action dimension, averaged over selected tokens."""
    per_token = jnp.mean((predicted - target) ** 2, axis=-1)
    m = jnp.broadcast_to(mask, per_token.shape).astype(per_token.dtype)
    return jnp.sum(per_token * m) / jnp.maximum(jnp.sum(m), 1.0)
