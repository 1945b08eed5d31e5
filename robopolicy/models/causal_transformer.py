"""A small GPT-style causal transformer over a sequence of per-step vectors.

DynaMo's inverse- and forward-dynamics models are both this shape: project each step's input to the
model width, add a learned position embedding, run pre-norm blocks whose self-attention only looks
at the current and earlier steps, then project each step to the output size.

Dropout (`dropout` > 0, active only when a key is passed, i.e. in training) follows GPT-2: on the
embedded input, on the attention weights and on each residual branch. DynaMo uses it on the forward
dynamics model only (the reference's block-push setting: 0.3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, PRNGKeyArray

from robopolicy.models.transformer_denoiser import attention


def dropout(x: Float[Array, "*s"], rate: float, key: PRNGKeyArray | None) -> Float[Array, "*s"]:
    """Inverted dropout: zero each entry with probability `rate`, scale the rest by 1/(1 − rate)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class _CausalBlock(nnx.Module):
    """Pre-norm causal self-attention then a GELU MLP (4× width), each with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float, *, rngs: nnx.Rngs) -> None:
        self.heads, self.dropout = heads, dropout
        self.norm_attn = nnx.LayerNorm(dim, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.attn_out = nnx.Linear(dim, dim, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(dim, rngs=rngs)
        self.fc1 = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.fc2 = nnx.Linear(4 * dim, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "b t d"], key: PRNGKeyArray | None = None) -> Float[Array, "b t d"]:
        b, t, d = x.shape
        rate = self.dropout if key is not None else 0.0
        keys = jax.random.split(key, 3) if key is not None else (None, None, None)
        q, k, v = jnp.split(self.qkv(self.norm_attn(x)), 3, axis=-1)
        split = lambda a: a.reshape(b, t, self.heads, d // self.heads)  # noqa: E731
        causal = jnp.broadcast_to(jnp.tril(jnp.ones((t, t), bool)), (b, t, t))
        h = attention(split(q), split(k), split(v), causal, rate, keys[0]).reshape(b, t, d)
        x = x + dropout(self.attn_out(h), rate, keys[1])
        return x + dropout(self.fc2(jax.nn.gelu(self.fc1(self.norm_mlp(x)))), rate, keys[2])


class CausalTransformer(nnx.Module):
    """[B, T, in_dim] → [B, T, out_dim]; output t depends only on inputs 0…t.

    `max_len` bounds T (the learned position table's size); `dropout` is the rate applied when the
    call gets a key.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int,
        layers: int,
        heads: int,
        max_len: int,
        dropout: float = 0.0,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        if dim % heads:
            raise ValueError(f"CausalTransformer: width {dim} is not divisible by {heads} heads")
        self.max_len, self.dropout = max_len, dropout
        self.inp = nnx.Linear(in_dim, dim, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (max_len, dim)))
        self.blocks = nnx.List([_CausalBlock(dim, heads, dropout, rngs=rngs) for _ in range(layers)])
        self.norm_out = nnx.LayerNorm(dim, rngs=rngs)
        self.out = nnx.Linear(dim, out_dim, rngs=rngs)

    def __call__(self, x: Float[Array, "b t i"], key: PRNGKeyArray | None = None) -> Float[Array, "b t o"]:
        """`key`: dropout's randomness (training); None runs without dropout."""
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"CausalTransformer: sequence of {t} steps exceeds max_len {self.max_len}")
        keys = (
            list(jax.random.split(key, len(self.blocks) + 1))
            if key is not None
            else [None] * (len(self.blocks) + 1)
        )
        h = dropout(self.inp(x) + self.pos[...][:t], self.dropout, keys[0])
        for block, block_key in zip(self.blocks, keys[1:], strict=True):
            h = block(h, block_key)
        return self.out(self.norm_out(h))
