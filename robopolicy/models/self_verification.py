"""Self-verification for Past-Token Prediction policies (Torne et al. 2025).

N candidate chunks are drawn in one batched pass. Each candidate also predicts the past tokens of its
chunk (indices [start, To−1)); the candidate whose past tokens best match the actions actually
executed (MSE in normalized action space) is executed. Until the history holds To−1 executed actions
there is nothing to compare against, so the first candidate is taken.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def candidate_scores(
    candidates: Float[Array, "b n h a"], history: Float[Array, "b p a"], start: int
) -> Float[Array, "b n"]:
    """MSE between candidates' past tokens [start, p) and the executed history [start, p); p = To−1."""
    p = history.shape[1]
    if not 0 <= start < p:
        raise ValueError(f"past-token start {start} must be in [0, {p})")
    diff = candidates[:, :, start:p] - history[:, None, start:p]
    return jnp.mean(diff**2, axis=(2, 3))


def select_candidate(
    candidates: Float[Array, "b n h a"],
    history: Float[Array, "b p a"],
    history_full: Bool[Array, " b"],
    start: int,
) -> tuple[Float[Array, "b h a"], Int[Array, " b"]]:
    """The best-scoring candidate per batch element (candidate 0 where the history is not yet full)."""
    best = jnp.argmin(candidate_scores(candidates, history, start), axis=1)
    best = jnp.where(history_full, best, 0)
    chosen = jnp.take_along_axis(candidates, best[:, None, None, None], axis=1)[:, 0]
    return chosen, best


def push_history(
    history: Float[Array, "b p a"], count: Int[Array, " b"], executed: Float[Array, "b a"]
) -> tuple[Float[Array, "b p a"], Int[Array, " b"]]:
    """Append one executed (normalized) action to a FIFO of the last p; returns (history, count)."""
    return jnp.concatenate([history[:, 1:], executed[:, None]], axis=1), jnp.minimum(
        count + 1, history.shape[1]
    )
