"""Self-verification for Past-Token Prediction policies (Torne et al. 2025).

N candidate chunks are drawn in one batched pass. Each candidate also predicts the past tokens of its
chunk (indices [start, To−1)); the candidate whose past tokens best match the actions actually
executed at those steps (MSE in normalized action space) is executed.

With a frame stride k the past tokens are k steps apart: token j stands for step t−(To−1−j)·k. The
executed history therefore covers the last (To−1)·k steps, t−(To−1)·k … t−1, and every k-th of them
is compared. Until it holds the steps of the compared tokens (the last past_steps·k) there is nothing
to compare against, and the first candidate is taken.

This is the only candidate selection: `Policy.sample_verified` uses it, and the closed-loop runner
calls `sample_verified`.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def past_token_actions(history: Float[Array, "b k a"], stride: int) -> Float[Array, "b p a"]:
    """The executed actions at the steps of the past tokens: every `stride`-th of the last
    k = (To−1)·stride executed actions (oldest first), i.e. steps t−(To−1)·stride, …, t−stride."""
    if stride < 1 or history.shape[1] % stride:
        raise ValueError(
            f"history of {history.shape[1]} steps does not hold past tokens {stride} steps apart"
        )
    return history[:, ::stride]


def candidate_scores(
    candidates: Float[Array, "b n h a"], past_actions: Float[Array, "b p a"], start: int
) -> Float[Array, "b n"]:
    """MSE between candidates' past tokens [start, p) and the executed actions at their steps; p = To−1."""
    p = past_actions.shape[1]
    if not 0 <= start < p:
        raise ValueError(f"past-token start {start} must be in [0, {p})")
    diff = candidates[:, :, start:p] - past_actions[:, None, start:p]
    return jnp.mean(diff**2, axis=(2, 3))


def select_candidate(
    candidates: Float[Array, "b n h a"],
    past_actions: Float[Array, "b p a"],
    history_full: Bool[Array, " b"],
    start: int,
) -> tuple[Float[Array, "b h a"], Int[Array, " b"]]:
    """The best-scoring candidate per batch element (candidate 0 where the history is not yet full)."""
    best = jnp.argmin(candidate_scores(candidates, past_actions, start), axis=1)
    best = jnp.where(history_full, best, 0)
    chosen = jnp.take_along_axis(candidates, best[:, None, None, None], axis=1)[:, 0]
    return chosen, best
