"""Compute precision of a policy: which dtype the layers compute in (parameters stay float32).

With "bfloat16" every flax layer gets `dtype=bfloat16, param_dtype=float32`: matmuls and convolutions
run in bf16 on float32 master weights, so the optimizer and EMA keep full precision. A few steps are
kept in float32 on purpose (see `to_float32` callers): normalization statistics (flax computes them in
at least float32), softmaxes (exp of bf16 logits loses the small weights that spatial softmax and
attention average over), the sinusoidal time embedding (angles up to 1000 rad need more than bf16's
8 significant bits) and everything after the denoiser: losses and sampler states are float32.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jaxtyping import Array

ComputeDType = Literal["float32", "bfloat16"]
COMPUTE_DTYPES: dict[str, jnp.dtype] = {
    "float32": jnp.dtype(jnp.float32),
    "bfloat16": jnp.dtype(jnp.bfloat16),
}


def compute_dtype(name: str) -> jnp.dtype:
    """The jnp dtype of a `PolicyConfig.compute_dtype` name."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"unknown compute_dtype {name!r}; expected one of {sorted(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def to_float32(x: Array) -> Array:
    """`x` as float32 (a no-op when it already is), for the steps kept out of bf16."""
    return x.astype(jnp.float32)
