"""Scale-free measures of representation collapse, for self-supervised encoders such as DynaMo.

The raw spread of embeddings (their std per dimension) says little on its own: the cosine
prediction loss ignores scale, while the covariance regulariser is quartic in it
(`covariance_regularizer(c·z) = c⁴·covariance_regularizer(z)`), so an encoder can shrink every
embedding without losing any information. The two measures here ignore scale:

- `normalized_std`: the per-dimension std of the L2-normalised embeddings times √E (as in SimSiam,
  Chen & He 2021). ≈1 for embeddings spread isotropically, 0 when all point the same way.
- `effective_rank`: exp of the entropy of the normalised singular values of the centred embedding
  matrix (Roy & Vetterli 2007). Between 1 (everything on one line) and E (all directions used equally).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def normalized_std(z: Float[Array, "n e"], eps: float = 1e-8) -> Float[Array, ""]:
    """√E · mean over dimensions of the std over rows of z/‖z‖ (unitless, ≈1 isotropic, 0 collapsed)."""
    unit = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), eps)
    return jnp.sqrt(z.shape[-1]) * jnp.mean(jnp.std(unit, axis=0))


def effective_rank(z: Float[Array, "n e"], eps: float = 1e-12) -> Float[Array, ""]:
    """exp(H(p)) with p the singular values of the column-centred z divided by their sum; in [1, min(n, E)]."""
    centred = z - jnp.mean(z, axis=0, keepdims=True)
    s = jnp.linalg.svd(centred, compute_uv=False)
    p = s / jnp.maximum(jnp.sum(s), eps)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, eps)), 0.0))
    return jnp.exp(entropy)
