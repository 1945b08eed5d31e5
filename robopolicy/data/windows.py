"""Where a training window's observations and actions sit relative to its anchor step.

Alignment follows Diffusion Policy and Past-Token Prediction: a sample anchored at step t sees `To`
observations ending at t, and its `H` actions start at the first observation step, so index To−1 is
the action of the current step t.

With a frame stride k (long context, e.g. 16 frames every k steps) the observations are the steps
t − (To−1)·k, …, t − k, t. The past actions are subsampled the same way and the future ones stay
dense, because the policy executes one action per step:

    action index j < To−1:  step t − (To−1−j)·k   (past actions, one per observed frame)
    action index j ≥ To−1:  step t + (j − To + 1)  (the current action, then the next ones)

so for To=3, H=5, k=4 the window holds observations of steps t−8, t−4, t and actions of steps
t−8, t−4, t, t+1, t+2. With k=1 both rules give the contiguous window t−To+1 … t−To+H.

The stride is the policy's (`PolicyConfig.frame_stride`); 0 there means "from the dataset", resolved
by `frame_stride_for` when training starts.

Steps before the episode start repeat the first step and steps after the end repeat the last (the
experts end at rest, so the repeated last action means "stay"); `obs_valid` and `action_valid` mark
which positions are real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from jaxtyping import Bool, Int

T = TypeVar("T")


def window_offsets(
    obs_horizon: int, action_horizon: int, frame_stride: int = 1
) -> tuple[Int[np.ndarray, " to"], Int[np.ndarray, " h"]]:
    """Step offsets from the anchor step: observations [To] and actions [H]."""
    if min(obs_horizon, action_horizon, frame_stride) < 1:
        raise ValueError("obs_horizon, action_horizon and frame_stride must be positive")
    obs = (np.arange(obs_horizon) - (obs_horizon - 1)) * frame_stride
    j = np.arange(action_horizon)
    current = obs_horizon - 1
    action = np.where(j < current, (j - current) * frame_stride, j - current)
    return obs.astype(np.int64), action.astype(np.int64)


def window_indices(
    num_steps: int, t: int, obs_horizon: int, action_horizon: int, frame_stride: int = 1
) -> tuple[Int[np.ndarray, " to"], Int[np.ndarray, " h"], Bool[np.ndarray, " h"]]:
    """Clipped observation and action step indices of one window anchored at step t, and action validity."""
    obs_off, act_off = window_offsets(obs_horizon, action_horizon, frame_stride)
    raw = t + act_off
    obs = np.clip(t + obs_off, 0, num_steps - 1)
    return obs, np.clip(raw, 0, num_steps - 1), (raw >= 0) & (raw < num_steps)


def history_length(obs_horizon: int, frame_stride: int = 1) -> int:
    """Steps of history a policy must keep to see `obs_horizon` frames `frame_stride` apart."""
    return (obs_horizon - 1) * frame_stride + 1


def observed_frames(history: Sequence[T], obs_horizon: int, frame_stride: int = 1) -> list[T]:
    """The frames of a window out of the newest `history_length` steps (oldest first), as training
    sees them: every `frame_stride`-th step ending at the newest one."""
    if len(history) != history_length(obs_horizon, frame_stride):
        raise ValueError(
            f"need {history_length(obs_horizon, frame_stride)} steps of history, got {len(history)}"
        )
    return list(history)[::-1][::frame_stride][::-1]


def frame_stride_for(episode_lengths: Sequence[int], obs_horizon: int) -> int:
    """The frame stride that lets `obs_horizon` frames span about half of a median episode:
    max(1, round(median length / (2·(To−1)))), halves rounded up; 1 for To = 1 (nothing to space).

    Past-Token Prediction's long tasks (hundreds of steps, To=16) observe every 20th step; episodes of
    17–29 steps keep consecutive frames.
    """
    if not episode_lengths:
        raise ValueError("frame_stride_for needs at least one episode length")
    if obs_horizon <= 1:
        return 1
    median = float(np.median(np.asarray(episode_lengths, np.float64)))
    return max(1, math.floor(median / (2 * (obs_horizon - 1)) + 0.5))
