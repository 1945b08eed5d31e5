"""A transformer denoiser over action tokens, conditioned on observation tokens by cross-attention.

One token per chunk position attends causally to earlier action tokens (self-attention) and to a
memory of conditioning tokens (cross-attention): [time, (instruction), obs_0 … obs_{To−1}]. This is the
layout of Diffusion Policy's transformer, on which the Past-Token Prediction code builds (PTP default:
8 layers, 4 heads, 256-d, attention dropout 0.3). Cross-attention rather than an observation prefix
keeps the action self-attention a plain causal square whatever To is, and lets a stage-2 head swap
image features for cached embeddings without touching the action stream.

Memory mask: action token i sees the time/instruction tokens and observation steps ≤ i (and every
observation step once i ≥ To−1). A past action is thus predicted from the observations up to when it
was taken, not inferred from the frames that followed it.

Attention dropout is applied only when a `dropout_key` is passed (training), so the module holds no
RNG state and `nnx.merge(graphdef, params)` rebuilds it from parameters alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from robopolicy.models.mlp_denoiser import sinusoidal_embedding
from robopolicy.models.precision import to_float32


def attention(
    q: Float[Array, "b n h d"],
    k: Float[Array, "b m h d"],
    v: Float[Array, "b m h d"],
    mask: Bool[Array, "b n m"],
    dropout_rate: float,
    dropout_key: PRNGKeyArray | None,
) -> Float[Array, "b n h d"]:
    """Scaled dot-product attention with a boolean mask (True = may attend) and attention dropout."""
    # Scaling, masking and softmax in float32 whatever the compute dtype: bf16 logits would round
    # the weights of a long memory; the weights go back to v's dtype for the second matmul.
    logits = to_float32(jnp.einsum("bnhd,bmhd->bhnm", q, k)) / jnp.sqrt(q.shape[-1]).astype(jnp.float32)
    logits = jnp.where(mask[:, None], logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    if dropout_key is not None and dropout_rate > 0:
        keep = jax.random.bernoulli(dropout_key, 1.0 - dropout_rate, weights.shape)
        weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
    return jnp.einsum("bhnm,bmhd->bnhd", weights.astype(v.dtype), v)


class _Attention(nnx.Module):
    def __init__(
        self, dim: int, heads: int, dropout_rate: float, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
    ) -> None:
        self.heads, self.dropout_rate = heads, dropout_rate
        self.q = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.kv = nnx.Linear(dim, 2 * dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "b n d"],
        context: Float[Array, "b m d"],
        mask: Bool[Array, "b n m"],
        dropout_key: PRNGKeyArray | None,
    ) -> Float[Array, "b n d"]:
        b, n, d = x.shape
        split = lambda t: t.reshape(*t.shape[:2], self.heads, d // self.heads)  # noqa: E731
        k, v = jnp.split(self.kv(context), 2, axis=-1)
        out = attention(split(self.q(x)), split(k), split(v), mask, self.dropout_rate, dropout_key)
        return self.out(out.reshape(b, n, d))


class _DecoderLayer(nnx.Module):
    """Pre-norm: causal self-attention, cross-attention to the memory, then a GELU MLP (4× width)."""

    def __init__(
        self, dim: int, heads: int, dropout_rate: float, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
    ) -> None:
        self.norm_self = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.self_attn = _Attention(dim, heads, dropout_rate, dtype=dtype, rngs=rngs)
        self.norm_cross = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.cross_attn = _Attention(dim, heads, dropout_rate, dtype=dtype, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(dim, 4 * dim, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(4 * dim, dim, dtype=dtype, rngs=rngs)

    def __call__(
        self,
        x: Float[Array, "b n d"],
        memory: Float[Array, "b m d"],
        self_mask: Bool[Array, "b n n"],
        cross_mask: Bool[Array, "b n m"],
        dropout_key: PRNGKeyArray | None,
    ) -> Float[Array, "b n d"]:
        k1, k2 = jax.random.split(dropout_key) if dropout_key is not None else (None, None)
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, self_mask, k1)
        x = x + self.cross_attn(self.norm_cross(x), memory, cross_mask, k2)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm_mlp(x))))


def memory_mask(action_horizon: int, num_prefix: int, obs_valid: Bool[Array, "b to"]) -> Bool[Array, "b h m"]:
    """Which memory tokens each action token sees: all `num_prefix` tokens, obs steps ≤ i, valid only."""
    to = obs_valid.shape[1]
    steps = jnp.arange(to)[None, :] <= jnp.arange(action_horizon)[:, None]  # [H, To]
    obs = steps[None] & obs_valid[:, None, :]  # [B, H, To]
    prefix = jnp.ones((obs.shape[0], action_horizon, num_prefix), bool)
    return jnp.concatenate([prefix, obs], axis=-1)


class TransformerDenoiser(nnx.Module):
    """(x_t [B, H, A], t [B], obs tokens [B, To, D], prefix tokens [B, P, D]) → [B, H, A]."""

    def __init__(
        self,
        action_horizon: int,
        action_dim: int,
        obs_horizon: int,
        dim: int,
        depth: int,
        heads: int,
        dropout_rate: float,
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if dim % heads:
            raise ValueError(f"transformer dim {dim} must be divisible by heads {heads}")
        self.action_horizon, self.dim = action_horizon, dim
        self.inp = nnx.Linear(action_dim, dim, dtype=dtype, rngs=rngs)
        self.action_pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (action_horizon, dim)))
        self.obs_pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (obs_horizon, dim)))
        self.time_fc1 = nnx.Linear(dim, 4 * dim, dtype=dtype, rngs=rngs)
        self.time_fc2 = nnx.Linear(4 * dim, dim, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [_DecoderLayer(dim, heads, dropout_rate, dtype=dtype, rngs=rngs) for _ in range(depth)]
        )
        self.out_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(dim, action_dim, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(
        self,
        x_t: Float[Array, "b h a"],
        t: Float[Array, " b"],
        obs_tokens: Float[Array, "b to d"],
        obs_valid: Bool[Array, "b to"],
        prefix_tokens: Float[Array, "b p d"] | None = None,
        dropout_key: PRNGKeyArray | None = None,
    ) -> Float[Array, "b h a"]:
        """`t` is the noise level in [0, 1] (flow time, or diffusion step / T)."""
        b, h, _ = x_t.shape
        time = self.time_fc2(jax.nn.gelu(self.time_fc1(sinusoidal_embedding(t, self.dim))))[:, None]
        prefix = time if prefix_tokens is None else jnp.concatenate([time, prefix_tokens], axis=1)
        memory = jnp.concatenate([prefix, obs_tokens + self.obs_pos[...].astype(self.dtype)[None]], axis=1)
        self_mask = jnp.broadcast_to(jnp.tril(jnp.ones((h, h), bool)), (b, h, h))
        cross_mask = memory_mask(h, prefix.shape[1], obs_valid)
        x = self.inp(x_t) + self.action_pos[...].astype(self.dtype)[None]
        keys = (
            list(jax.random.split(dropout_key, len(self.layers)))
            if dropout_key is not None
            else [None] * len(self.layers)
        )
        for layer, key in zip(self.layers, keys, strict=True):
            x = layer(x, memory, self_mask, cross_mask, key)
        return self.out(self.out_norm(x))
