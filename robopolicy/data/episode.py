"""One demonstration episode in memory: the unit that collection writes and training reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float, UInt8


@dataclass
class Episode:
    """T steps of observations and the actions taken at them.

    `frames[camera]` is uint8 [T, H, W, 3]; `state` float32 [T, S]; `action` float32 [T, A];
    `reward` float32 [T]. Step t's action was taken after observing step t.
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

    def __len__(self) -> int:
        return len(self.action)

    def validate(self, where: str) -> None:
        """Raise ValueError naming `where`, the episode and the key when shapes or values are wrong."""
        name = f"{where}: episode {self.episode_id}"
        n = len(self.action)
        if n < 2:
            raise ValueError(f"{name}: needs at least 2 steps, has {n}")
        for key, arr in [("state", self.state), ("action", self.action), ("reward", self.reward)]:
            if len(arr) != n:
                raise ValueError(f"{name}: key '{key}' has {len(arr)} steps, 'action' has {n}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: key '{key}' contains NaN or Inf")
        for cam, arr in self.frames.items():
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[0] != n or arr.shape[-1] != 3:
                raise ValueError(
                    f"{name}: camera '{cam}' must be uint8 [{n}, H, W, 3], got {arr.dtype} {arr.shape}"
                )
