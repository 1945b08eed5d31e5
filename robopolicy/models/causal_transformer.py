"""A small GPT-style causal transformer over a sequence of per-step vectors.

DynaMo's inverse- and forward-dynamics models are both this shape: project each step's input to the
model width, add a learned position embedding, run pre-norm blocks whose self-attention only looks
at the current and earlier steps, then project each step to the output size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from robopolicy.models.transformer_denoiser import attention


class _CausalBlock(nnx.Module):
    """Pre-norm causal self-attention then a GELU MLP (4× width), each with a residual."""

    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs) -> None:
        self.heads = heads
        self.norm_attn = nnx.LayerNorm(dim, rngs=rngs)
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.attn_out = nnx.Linear(dim, dim, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(dim, rngs=rngs)
        self.fc1 = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.fc2 = nnx.Linear(4 * dim, dim, rngs=rngs)

    def __call__(self, x: Float[Array, "b t d"]) -> Float[Array, "b t d"]:
        b, t, d = x.shape
        q, k, v = jnp.split(self.qkv(self.norm_attn(x)), 3, axis=-1)
        split = lambda a: a.reshape(b, t, self.heads, d // self.heads)  # noqa: E731
        causal = jnp.broadcast_to(jnp.tril(jnp.ones((t, t), bool)), (b, t, t))
        h = attention(split(q), split(k), split(v), causal, 0.0, None).reshape(b, t, d)
        x = x + self.attn_out(h)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm_mlp(x))))


class CausalTransformer(nnx.Module):
    """[B, T, in_dim] → [B, T, out_dim]; output t depends only on inputs 0…t.

    `max_len` bounds T (the learned position table's size).
    """

    def __init__(
        self, in_dim: int, out_dim: int, dim: int, layers: int, heads: int, max_len: int, *, rngs: nnx.Rngs
    ) -> None:
        if dim % heads:
            raise ValueError(f"CausalTransformer: width {dim} is not divisible by {heads} heads")
        self.max_len = max_len
        self.inp = nnx.Linear(in_dim, dim, rngs=rngs)
        self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (max_len, dim)))
        self.blocks = nnx.List([_CausalBlock(dim, heads, rngs=rngs) for _ in range(layers)])
        self.norm_out = nnx.LayerNorm(dim, rngs=rngs)
        self.out = nnx.Linear(dim, out_dim, rngs=rngs)

    def __call__(self, x: Float[Array, "b t i"]) -> Float[Array, "b t o"]:
        t = x.shape[1]
        if t > self.max_len:
            raise ValueError(f"CausalTransformer: sequence of {t} steps exceeds max_len {self.max_len}")
        h = self.inp(x) + self.pos[...][:t]
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm_out(h))
