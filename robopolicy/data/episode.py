"""One demonstration episode in memory: the unit that collection writes and training reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float, UInt8


@dataclass
class Episode:
    """T steps of observations and the actions taken at them.

    `frames[camera]` is uint8 [T, H, W, 3]; `state` float32 [T, S]; `action` float32 [T, A];
    `reward` float32 [T]. Step t's action was taken after observing step t. An episode read from
    an embedding cache has `embeddings[camera]` float32 [T, D] instead of frames (and `frames` empty).
    `object_state` float32 [T, O]: the objects' poses (simulated datasets written by `robopolicy
    collect`, `observation/object_state`), or None where the dataset has none; only probes read it.
    """

    frames: dict[str, UInt8[np.ndarray, "t h w 3"]]
    state: Float[np.ndarray, "t s"]
    action: Float[np.ndarray, "t a"]
    reward: Float[np.ndarray, " t"]
    task: str
    instruction: str
    episode_id: int
    seed: int = -1
    init_state_id: int = -1
    success: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, Float[np.ndarray, "t d"]] = field(default_factory=dict)
    object_state: Float[np.ndarray, "t o"] | None = None

    def __len__(self) -> int:
        return len(self.action)
