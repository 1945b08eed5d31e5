"""A residual MLP that predicts the flow velocity of a whole action chunk at once.

The chunk is flattened, so the network sees every time step together; conditioning (observation
features and a sinusoidal embedding of the flow time) is added into every block, FiLM-style.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float


def sinusoidal_embedding(t: Float[Array, " b"], dim: int, max_period: float = 1000.0) -> Float[Array, "b d"]:
    """Transformer-style embedding of a scalar time in [0, 1] (scaled to [0, max_period])."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = (t * max_period)[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class _ResidualBlock(nnx.Module):
    def __init__(self, width: int, cond_dim: int, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        self.norm = nnx.LayerNorm(width, use_scale=False, use_bias=False, dtype=dtype, rngs=rngs)
        self.film = nnx.Linear(cond_dim, 2 * width, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, width * 2, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(width * 2, width, kernel_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "b w"], cond: Float[Array, "b c"]) -> Float[Array, "b w"]:
        scale, shift = jnp.split(self.film(cond), 2, axis=-1)
        h = self.norm(x) * (1.0 + scale) + shift
        return x + self.fc2(jax.nn.gelu(self.fc1(h)))


class MLPDenoiser(nnx.Module):
    """(x_t [B, H, A], t [B], cond [B, C]) → velocity [B, H, A]."""

    def __init__(
        self,
        action_horizon: int,
        action_dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        self.action_horizon, self.action_dim = action_horizon, action_dim
        self.time_dim = 128
        self.cond_proj = nnx.Linear(cond_dim + self.time_dim, width, dtype=dtype, rngs=rngs)
        self.inp = nnx.Linear(action_horizon * action_dim, width, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([_ResidualBlock(width, width, dtype=dtype, rngs=rngs) for _ in range(depth)])
        self.out_norm = nnx.LayerNorm(width, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(width, action_horizon * action_dim, dtype=dtype, rngs=rngs)

    def __call__(
        self, x_t: Float[Array, "b h a"], t: Float[Array, " b"], cond: Float[Array, "b c"]
    ) -> Float[Array, "b h a"]:
        b = x_t.shape[0]
        c = jax.nn.gelu(self.cond_proj(jnp.concatenate([cond, sinusoidal_embedding(t, self.time_dim)], -1)))
        h = self.inp(x_t.reshape(b, -1))
        for block in self.blocks:
            h = block(h, c)
        return self.out(jax.nn.gelu(self.out_norm(h))).reshape(b, self.action_horizon, self.action_dim)
