"""Language conditioning: learned word embeddings over the dataset's instruction vocabulary.

The data pipeline (`robopolicy.data.instruction_vocab`) maps each instruction to int32 word ids
[B, L] (0 = padding, 1 = unknown word); the vocabulary size comes from the config. No pretrained text
model is downloaded. Anything with the same call signature can replace this encoder.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from robopolicy.models.precision import to_float32

PADDING_ID = 0
TextPooling = Literal["mean", "attention"]


class WordEmbeddingTextEncoder(nnx.Module):
    """Word ids [B, L] → one vector [B, dim], ignoring padding.

    `pooling="mean"` averages the word embeddings; `"attention"` softmax-weights them with a learned
    query, so a few content words can dominate. Either is invariant to how much padding follows.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        pooling: TextPooling = "mean",
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (padding and unknown), got {vocab_size}")
        if pooling not in ("mean", "attention"):
            raise ValueError(f"unknown text pooling {pooling!r}")
        self.pooling = pooling
        self.embed = nnx.Embed(vocab_size, dim, dtype=dtype, rngs=rngs)
        self.query = (
            nnx.Param(jax.random.normal(rngs.params(), (dim,)) / jnp.sqrt(dim))
            if pooling == "attention"
            else None
        )
        self.norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)

    def __call__(self, word_ids: Int[Array, "b l"]) -> Float[Array, "b d"]:
        words = self.embed(word_ids)  # [B, L, D]
        valid = word_ids != PADDING_ID
        if self.pooling == "mean":
            weights = valid.astype(words.dtype)
            weights = weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1.0)
        else:
            logits = jnp.einsum("bld,d->bl", words, self.query[...].astype(words.dtype))
            # Softmax in float32 (-1e30 and small weights do not survive bf16); an all-padding
            # instruction gets all-zero weights rather than NaNs.
            logits = to_float32(logits) / jnp.sqrt(words.shape[-1])
            weights = jax.nn.softmax(jnp.where(valid, logits, -1e30), axis=1) * valid.any(
                axis=1, keepdims=True
            )
            weights = weights.astype(words.dtype)
        return self.norm(jnp.einsum("bl,bld->bd", weights, words))
