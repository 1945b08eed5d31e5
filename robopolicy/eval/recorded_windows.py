"""A trained policy queried offline on a recorded episode (a demo or a stored rollout).

What closed-loop evaluation does one step at a time, here at any step t of a recording: the model
input for the window ending at t, chunks sampled for it, and the episode step each chunk token stands
for. Comparing a Past-Token Prediction policy's predicted past tokens with the actions recorded at
those steps, or scoring self-verification candidates against them, needs exactly these;
`past_token_errors` does the first over held-out episodes, per action dimension (the errors that
self-verification's inverse-variance weights come from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
from jaxtyping import Float, Int

from robopolicy.data.windows import history_length, window_offsets
from robopolicy.eval.action_selector import instruction_ids, window_batch, window_sampler
from robopolicy.train.loaded_policy import LoadedPolicy


def chunk_steps(policy: LoadedPolicy, t: int) -> Int[np.ndarray, " h"]:
    """Episode step of each token of a chunk planned at step t: past tokens every `frame_stride`
    steps up to t−stride, then t, t+1, … (index To−1 is step t). Steps before 0 come out negative."""
    cfg = policy.config
    _, action_offsets = window_offsets(cfg.obs_horizon, cfg.action_horizon, cfg.frame_stride)
    return t + action_offsets


def recorded_window(
    policy: LoadedPolicy,
    observations: Sequence[dict[str, np.ndarray]],
    t: int,
    instruction: str | None = None,
) -> dict[str, Any]:
    """The model input (batch axis 1) for the window ending at step t of recorded `observations`.

    Steps before the episode start repeat the first observation and are marked invalid, exactly as
    the closed-loop runner and the training windows do. `instruction` defaults to the training task's.
    """
    if not 0 <= t < len(observations):
        raise ValueError(f"step {t} is outside the recording's {len(observations)} observations")
    stride = policy.config.frame_stride
    n = history_length(policy.config.obs_horizon, stride)
    history = [observations[max(s, 0)] for s in range(t - n + 1, t + 1)]
    return window_batch(policy, history, t, instruction_ids(policy, instruction))


def recorded_past_actions(
    policy: LoadedPolicy, actions: Float[np.ndarray, "T a"], t: int, start: int | None = None
) -> Float[np.ndarray, "p a"]:
    """The recorded actions at the steps of the chunk's past tokens [start, To−1), normalized.

    `start` defaults to the first past token the policy was trained on (`config.past_token_start`).
    These are what self-verification compares candidates' past tokens with; every one must lie in
    the episode.
    """
    cfg = policy.config
    start = cfg.past_token_start if start is None else start
    steps = chunk_steps(policy, t)[start : cfg.obs_horizon - 1]
    if len(steps) == 0:
        raise ValueError("the policy predicts no past tokens (past_steps=0 or obs_horizon=1)")
    if steps[0] < 0 or steps[-1] >= len(actions):
        raise ValueError(
            f"step {t}: past tokens cover steps {steps[0]}..{steps[-1]}, outside the {len(actions)} recorded actions"
        )
    return policy.stats.action.normalize(np.asarray(actions)[steps]).astype(np.float32)


def sample_chunks(
    policy: LoadedPolicy, batch: dict[str, Any], key: jax.Array, num: int = 1
) -> Float[np.ndarray, "n h a"]:
    """`num` chunks for one window, in normalized action space, drawn in one batched pass (the same
    jitted sampler as closed-loop evaluation); `policy.stats.action.unnormalize` gives env actions."""
    return np.asarray(window_sampler(policy.config)(policy.params, batch, key, num))


def past_token_errors(
    policy: LoadedPolicy,
    episodes: Sequence[Mapping[str, Any]],
    *,
    tokens: Literal["trained", "all"] = "trained",
    seed: int = 0,
) -> Float[np.ndarray, " a"]:
    """The held-out past-token error per action dimension (normalized units, float64 [A]).

    For every step t of each recorded episode whose compared past tokens all lie inside it, one chunk
    is sampled for the window ending at t (key: `seed` folded with the episode's index, then t), and
    its past tokens are compared with the actions recorded at their steps; the squared differences
    are averaged over steps and tokens. `tokens` = "trained" compares the tokens the policy was
    trained on (those self-verification compares, [past_token_start, To−1)), "all" every past token
    [0, To−1) (to measure, on the same tokens, a policy trained without them). An episode is a
    mapping with "observations" (a sequence of observation dicts, one per step at least) and
    "actions" (T × A), as `robopolicy.sim.run_expert_episode` returns.

    `.mean()` is the overall past-token MSE; `robopolicy.models.self_verification.inverse_variance_weights`
    turns the errors into self-verification weights.
    """
    cfg = policy.config
    start = 0 if tokens == "all" else cfg.past_token_start
    if start >= cfg.obs_horizon - 1:
        raise ValueError("the policy predicts no past tokens (past_steps=0 or obs_horizon=1)")
    first = (cfg.obs_horizon - 1 - start) * cfg.frame_stride  # the oldest compared token at step 0
    base = jax.random.key(seed)
    sums, count = np.zeros(cfg.action_dim), 0
    for k, episode in enumerate(episodes):
        actions = np.asarray(episode["actions"])
        episode_key = jax.random.fold_in(base, k)
        for t in range(first, len(actions)):
            batch = recorded_window(policy, episode["observations"], t)
            chunk = sample_chunks(policy, batch, jax.random.fold_in(episode_key, t))[0]
            recorded = recorded_past_actions(policy, actions, t, start)
            sums += np.sum((chunk[start : cfg.obs_horizon - 1] - recorded) ** 2, axis=0)
            count += len(recorded)
    if count == 0:
        raise ValueError(f"no episode is longer than the {first} steps the past tokens reach back")
    return sums / count
