"""Training windows over episodes: `To` observations and `H` actions per sample.

Alignment follows Diffusion Policy and Past-Token Prediction: a sample anchored at step t sees the
observations t−To+1 … t, and its action sequence starts at the first observation step, so the
action chunk covers steps t−To+1 … t−To+H and index To−1 is the action for the current step t.
Indices before the episode start repeat the first step and indices after the end repeat the last
(the experts end at rest, so the repeated last action means "stay"); `action_valid` marks which
action positions are real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, Int, UInt8

from robopolicy.data.episode import Episode
from robopolicy.data.normalization import NormalizationStats


def window_indices(
    num_steps: int, t: int, obs_horizon: int, action_horizon: int
) -> tuple[Int[np.ndarray, " to"], Int[np.ndarray, " h"], Bool[np.ndarray, " h"]]:
    """Step indices of one window anchored at step t of an episode of `num_steps` steps."""
    start = t - obs_horizon + 1
    obs = np.clip(np.arange(start, t + 1), 0, num_steps - 1)
    raw = np.arange(start, start + action_horizon)
    return obs, np.clip(raw, 0, num_steps - 1), (raw >= 0) & (raw < num_steps)


@dataclass
class WindowBatch:
    """A batch of training windows. Images stay uint8 until they reach the model."""

    images: dict[str, UInt8[np.ndarray, "b to h w 3"]]
    state: Float[np.ndarray, "b to s"]
    action: Float[np.ndarray, "b h a"]
    action_valid: Bool[np.ndarray, "b h"]

    def as_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "state": self.state,
            "action": self.action,
            "action_valid": self.action_valid,
        }


class WindowDataset:
    """All windows of a list of episodes, held in memory as one concatenated array per key.

    Sample i is anchored at step `anchor[i]` of its episode; every step of every episode is an anchor.
    State and action come out normalized with `stats`.
    """

    def __init__(
        self, episodes: list[Episode], obs_horizon: int, action_horizon: int, stats: NormalizationStats
    ) -> None:
        if not episodes:
            raise ValueError("WindowDataset needs at least one episode")
        self.obs_horizon = obs_horizon
        self.action_horizon = action_horizon
        self.cameras = tuple(episodes[0].frames)
        lengths = np.asarray([len(e) for e in episodes])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self._frames = {cam: np.concatenate([e.frames[cam] for e in episodes]) for cam in self.cameras}
        self._state = stats.state.normalize(np.concatenate([e.state for e in episodes])).astype(np.float32)
        self._action = stats.action.normalize(np.concatenate([e.action for e in episodes])).astype(np.float32)
        # One row per sample: where its episode starts in the concatenated arrays, its length, its anchor.
        self._episode_start = np.repeat(starts, lengths)
        self._episode_length = np.repeat(lengths, lengths)
        self._anchor = np.concatenate([np.arange(n) for n in lengths])

    def __len__(self) -> int:
        return len(self._anchor)

    def get_batch(self, indices: Int[np.ndarray, " b"]) -> WindowBatch:
        """Gather the windows of the given sample indices (vectorized; no Python loop over samples)."""
        base = self._episode_start[indices][:, None]
        last = self._episode_length[indices][:, None] - 1
        start = self._anchor[indices][:, None] - self.obs_horizon + 1
        obs_raw = start + np.arange(self.obs_horizon)[None]
        act_raw = start + np.arange(self.action_horizon)[None]
        obs_idx = base + np.clip(obs_raw, 0, last)
        act_idx = base + np.clip(act_raw, 0, last)
        return WindowBatch(
            images={cam: frames[obs_idx] for cam, frames in self._frames.items()},
            state=self._state[obs_idx],
            action=self._action[act_idx],
            action_valid=(act_raw >= 0) & (act_raw <= last),
        )


class EpochSampler:
    """Shuffled batch indices as a pure function of the step number.

    Each epoch is a fresh permutation seeded by (seed, epoch), and the last partial batch is dropped,
    so batch s is the same whether a run got there directly or resumed from a checkpoint.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int) -> None:
        if num_samples < batch_size:
            raise ValueError(f"dataset has {num_samples} samples, fewer than one batch of {batch_size}")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.steps_per_epoch = num_samples // batch_size
        self._cached_epoch, self._perm = -1, np.empty(0, np.int64)

    def indices(self, step: int) -> Int[np.ndarray, " b"]:
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._cached_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            self._cached_epoch = epoch
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size]
