"""Windows of consecutive camera frames for self-supervised pretraining, and nothing else.

DynaMo learns from observations alone, so this loader touches only each episode's `frames` (never
its actions, state or reward) and yields {camera: uint8 [B, W, H, W, 3]}. Every window lies inside
one episode (W consecutive steps, no padding). Batch order is a pure function of (seed, step), so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
from jaxtyping import Int, UInt8

from robopolicy.data.epoch_sampler import EpochSampler
from robopolicy.data.window_source import gather_frames
from robopolicy.errors import UserError


class HasFrames(Protocol):
    """What the loader needs of an episode (an `Episode` qualifies)."""

    frames: Mapping[str, UInt8[np.ndarray, "t h w 3"]]
    episode_id: int


class ImageWindowLoader:
    """All length-`window` frame windows of some episodes, with shuffled batches by step number."""

    def __init__(
        self, episodes: Sequence[HasFrames], cameras: Sequence[str], window: int, batch_size: int, seed: int
    ) -> None:
        if not episodes:
            raise UserError("pretraining needs at least one episode")
        self.cameras, self.window = tuple(cameras), window
        # Frames stay per episode (decoded on demand when read from disk); a batch gathers from the
        # episodes it samples.
        self._frames: dict[str, list[np.ndarray]] = {cam: [] for cam in self.cameras}
        lengths = []
        for episode in episodes:
            for cam in self.cameras:
                if cam not in episode.frames:
                    raise UserError(
                        f"episode {episode.episode_id}: no camera {cam!r} (it has {sorted(episode.frames)})"
                    )
                self._frames[cam].append(episode.frames[cam])
            lengths.append(len(episode.frames[self.cameras[0]]))
        # Episode and first step of every window.
        self._window_episode = np.concatenate(
            [np.full(max(0, n - window + 1), i) for i, n in enumerate(lengths)] or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        self._window_start = np.concatenate(
            [np.arange(max(0, n - window + 1)) for n in lengths] or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        if len(self._window_start) < batch_size:
            raise UserError(
                f"{len(self._window_start)} windows of {window} frames, fewer than one batch of {batch_size}"
            )
        self._sampler = EpochSampler(len(self._window_start), batch_size, seed)

    def __len__(self) -> int:
        return len(self._window_start)

    def gather(self, indices: Int[np.ndarray, " b"]) -> dict[str, UInt8[np.ndarray, "b w h w2 3"]]:
        steps = self._window_start[indices][:, None] + np.arange(self.window)[None]
        episodes = self._window_episode[indices]
        return {cam: gather_frames(frames, episodes, steps) for cam, frames in self._frames.items()}

    def batch(self, step: int) -> dict[str, UInt8[np.ndarray, "b w h w2 3"]]:
        """The images of training step `step`: {camera: uint8 [B, W, H, W, 3]}."""
        return self.gather(self._sampler.indices(step))
