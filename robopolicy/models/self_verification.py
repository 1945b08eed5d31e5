"""Self-verification for Past-Token Prediction policies (Torne et al. 2025).

N candidate chunks are drawn in one batched pass. Each candidate also predicts the past tokens of its
chunk (indices [start, To−1)); the candidate whose past tokens best match the actions actually
executed at those steps is executed. `Verification` says how candidates are scored and chosen.

With a frame stride k the past tokens are k steps apart: token j stands for step t−(To−1−j)·k. The
executed history therefore covers the last (To−1)·k steps, t−(To−1)·k … t−1, and every k-th of them
is compared.

**Partial history.** Early in an episode only the newest past tokens stand for steps that have been
executed: token j is available once (To−1−j)·k actions have run. With `history="partial"` (the
default) a candidate is scored on the available tokens alone, so verification acts from the k-th
step on; with `history="full"` (the original behaviour) it waits until every compared token is
available, past_steps·k actions. With no token available there is nothing to compare, and candidate
0 is taken. Partial is the default because the memory tasks' decisive steps come early: waiting for
(To−1)·k executed actions left verification acting only at the end of 17–29-step episodes (#20).

**Score.** The weighted mean squared error over the compared tokens, in normalized action space:

    score = Σ_j m_j Σ_d w_d (candidate_jd − executed_jd)² / (Σ_j m_j · Σ_d w_d)

with m_j = 1 for a compared token and w_d the weight of action dimension d. Equal weights give the
plain MSE. "translation" weighs only dimensions 0–2; this assumes the action layout of our suites and
LIBERO, an end-effector position delta (x, y, z) first, then rotation and gripper. Min/max
normalization stretches tiny rotation deltas to the same range as the translation, and their
step-to-step jitter can then outweigh the translation signal that carries a decision.
"inverse_variance" weighs dimension d by 1/e_d, e_d the policy's held-out past-token error in that
dimension (`inverse_variance_weights`; `robopolicy.eval.recorded_windows.past_token_errors` measures
e_d), so dimensions the policy cannot predict count less.

**Selection.** "score" takes the lowest score (candidate 0 where no token is compared); "random"
takes a uniformly drawn candidate at every plan, a control for the score's value. Its draw uses its
own key, `choice_key(key)`, so the candidates are the same as under "score".

**Noise.** Candidate i denoises from `candidate_key(key, i)`: the key itself for candidate 0 and
fold_in(key, i) for the others, so candidate 0 of an N-candidate plan is exactly the chunk a
one-candidate plan draws with the same key (the N = 1 control shares candidate 0's noise stream).

This is the only candidate selection: `Policy.sample_verified` uses it, and the closed-loop runner
calls `sample_verified`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

TRANSLATION_DIMS = 3  # actions start with the end-effector position delta (x, y, z)
# fold_in data of the random choice's key: above any candidate index, so no candidate shares it.
_CHOICE_STREAM = 2**31 - 1

WeightsMode = Literal["equal", "translation", "custom", "inverse_variance"]


@dataclass(frozen=True)
class Verification:
    """How self-verification scores and chooses candidates (see the module docstring).

    Attributes:
        weights: per-action-dimension weights of the score: "equal" (all 1, the plain MSE);
            "translation" (1 on dimensions 0–2, the xyz position delta, 0 elsewhere); "custom"
            (`custom_weights`); "inverse_variance" (1/e_d from `dim_errors`, normalized to sum to the
            action dimension).
        custom_weights: one weight per action dimension for weights="custom"; >= 0, not all 0.
        dim_errors: the policy's held-out past-token error (MSE, normalized units) per action
            dimension for weights="inverse_variance" (`robopolicy.eval.recorded_windows.past_token_errors`).
        history: "partial" scores the past tokens whose steps have been executed so far; "full" waits
            until all of them have (candidate 0 until then).
        selection: "score" executes the best-scoring candidate; "random" a uniformly drawn one (a
            control).
    """

    weights: WeightsMode = "equal"
    custom_weights: tuple[float, ...] = ()
    dim_errors: tuple[float, ...] = ()
    history: Literal["partial", "full"] = "partial"
    selection: Literal["score", "random"] = "score"

    def __post_init__(self) -> None:
        if self.weights not in ("equal", "translation", "custom", "inverse_variance"):
            raise ValueError(
                f"Verification.weights: unknown {self.weights!r}; choose equal, translation, custom or inverse_variance"
            )
        if self.history not in ("partial", "full"):
            raise ValueError(f"Verification.history must be partial or full, got {self.history!r}")
        if self.selection not in ("score", "random"):
            raise ValueError(f"Verification.selection must be score or random, got {self.selection!r}")
        if (self.weights == "custom") != bool(self.custom_weights):
            raise ValueError("Verification.custom_weights: give them exactly when weights is 'custom'")
        if (self.weights == "inverse_variance") != bool(self.dim_errors):
            raise ValueError("Verification.dim_errors: give them exactly when weights is 'inverse_variance'")
        w = self.custom_weights
        if w and not (all(math.isfinite(x) and x >= 0 for x in w) and any(x > 0 for x in w)):
            raise ValueError(f"Verification.custom_weights must be finite, >= 0 and not all 0, got {w}")
        e = self.dim_errors
        if e and not all(math.isfinite(x) and x > 0 for x in e):
            raise ValueError(f"Verification.dim_errors must be finite and > 0, got {e}")

    def check_action_dim(self, action_dim: int) -> None:
        """ValueError naming the field if these weights do not fit actions of `action_dim` dimensions."""
        if self.weights == "translation" and action_dim < TRANSLATION_DIMS:
            raise ValueError(
                f"verification.weights='translation' needs >= {TRANSLATION_DIMS} action dimensions, got {action_dim}"
            )
        for name in ("custom_weights", "dim_errors"):
            values = getattr(self, name)
            if values and len(values) != action_dim:
                raise ValueError(
                    f"verification.{name} has {len(values)} values; the policy's actions have {action_dim} dimensions"
                )

    def dim_weights(self, action_dim: int) -> Float[np.ndarray, " a"]:
        """The score's weight of each action dimension (float32 [action_dim])."""
        self.check_action_dim(action_dim)
        if self.weights == "translation":
            w = np.zeros(action_dim)
            w[:TRANSLATION_DIMS] = 1.0
        elif self.weights == "custom":
            w = np.asarray(self.custom_weights)
        elif self.weights == "inverse_variance":
            w = inverse_variance_weights(np.asarray(self.dim_errors))
        else:
            w = np.ones(action_dim)
        return w.astype(np.float32)


class Selection(NamedTuple):
    """What self-verification chose, per batch row.

    chunk: [B, H, A] the executed candidate (normalized); index: [B] its candidate index; scores:
    [B, N] every candidate's score (0 where no token was compared); compared: [B] how many past tokens
    were compared (0: candidate 0 by default, whatever the scores say).
    """

    chunk: Float[Array, "b h a"]
    index: Int[Array, " b"]
    scores: Float[Array, "b n"]
    compared: Int[Array, " b"]


def inverse_variance_weights(errors: Float[np.ndarray, " a"]) -> Float[np.ndarray, " a"]:
    """Weights 1/e_d for per-dimension errors e_d (mean squared errors, i.e. residual variances),
    normalized to sum to the number of dimensions (so equal errors give weight 1 each)."""
    e = np.asarray(errors, np.float64)
    if e.ndim != 1 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"per-dimension errors must be a vector of finite values > 0, got {errors}")
    w = 1.0 / e
    return w * (len(e) / w.sum())


def candidate_key(key: PRNGKeyArray, index: int) -> PRNGKeyArray:
    """The noise key of candidate `index`: `key` itself for candidate 0, fold_in(key, index) after it."""
    return key if index == 0 else jax.random.fold_in(key, index)


def choice_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """The key of selection="random"'s draw, apart from every candidate's noise key."""
    return jax.random.fold_in(key, _CHOICE_STREAM)


def past_token_actions(history: Float[Array, "b k a"], stride: int) -> Float[Array, "b p a"]:
    """The executed actions at the steps of the past tokens: every `stride`-th of the last
    k = (To−1)·stride executed actions (oldest first), i.e. steps t−(To−1)·stride, …, t−stride."""
    if stride < 1 or history.shape[1] % stride:
        raise ValueError(
            f"history of {history.shape[1]} steps does not hold past tokens {stride} steps apart"
        )
    return history[:, ::stride]


def compared_tokens(
    executed: Int[Array, " b"],
    num_past: int,
    stride: int,
    start: int,
    history: Literal["partial", "full"] = "partial",
) -> Bool[Array, "b p"]:
    """Which past tokens j ∈ [0, num_past) are compared, given how many actions each row has executed.

    Token j stands for the step (num_past − j)·stride back, so it is available once that many actions
    have run; only trained tokens (j >= start) count. "partial" compares every available one; "full"
    compares all trained tokens once the oldest is available, none before.
    """
    if not 0 <= start < num_past:
        raise ValueError(f"past-token start {start} must be in [0, {num_past})")
    back = (num_past - jnp.arange(num_past)) * stride  # [p]: steps back of each token
    trained = jnp.arange(num_past) >= start
    executed = jnp.asarray(executed)[:, None]
    if history == "full":
        return trained[None] & (executed >= (num_past - start) * stride)
    return trained[None] & (back[None] <= executed)


def candidate_scores(
    candidates: Float[Array, "b n h a"],
    past_actions: Float[Array, "b p a"],
    mask: Bool[Array, "b p"],
    weights: Float[Array, " a"] | None = None,
) -> Float[Array, "b n"]:
    """Weighted MSE between each candidate's past tokens [0, p) and the executed actions at their
    steps, over the tokens `mask` selects (the module docstring's formula); 0 where none is selected.
    Equal weights without `weights`."""
    p, a = past_actions.shape[1], past_actions.shape[2]
    w = jnp.ones(a) if weights is None else jnp.asarray(weights)
    m = mask.astype(candidates.dtype)
    sq = (candidates[:, :, :p] - past_actions[:, None]) ** 2  # [b, n, p, a]
    total = jnp.einsum("bnpa,a,bp->bn", sq, w, m)
    return total / (jnp.maximum(m.sum(axis=1), 1.0) * jnp.sum(w))[:, None]


def select_candidate(
    candidates: Float[Array, "b n h a"],
    history: Float[Array, "b k a"],
    executed: Int[Array, " b"],
    *,
    stride: int,
    start: int,
    verification: Verification,
    key: PRNGKeyArray | None = None,
) -> Selection:
    """The chosen candidate per batch row.

    `history` holds the last k = (To−1)·stride executed actions (normalized, oldest first; entries
    before the first executed action are ignored), `executed` how many actions each row has executed
    (anything >= k means all). `key` (any key; `choice_key` of it is used) is needed for
    selection="random".
    """
    past = past_token_actions(history, stride)
    mask = compared_tokens(executed, past.shape[1], stride, start, verification.history)
    weights = verification.dim_weights(candidates.shape[-1])
    scores = candidate_scores(candidates, past, mask, weights)
    compared = mask.sum(axis=1).astype(jnp.int32)
    b, n = scores.shape
    if verification.selection == "random":
        if key is None:
            raise ValueError("selection='random' needs a key")
        index = jax.random.randint(choice_key(key), (b,), 0, n)
    else:
        index = jnp.where(compared > 0, jnp.argmin(scores, axis=1), 0).astype(jnp.int32)
    chosen = jnp.take_along_axis(candidates, index[:, None, None, None], axis=1)[:, 0]
    return Selection(chosen, index, scores, compared)
