"""Per-key normalization statistics and the maps into and out of normalized space.

Actions use min/max → [−1, 1] (as Diffusion Policy does), so the gripper's ±1 stays ±1 and the
flow head's Gaussian noise covers the data range. Proprio uses mean/std. Dimensions that never
vary (e.g. rotation deltas of an expert that holds orientation) would blow up under either rule, so
they pass through with unit scale.

Statistics are plain float32 numpy arrays so they go into checkpoints and JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import jax
import numpy as np
from jaxtyping import Float

Mode = Literal["minmax", "meanstd"]
ArrayT = TypeVar("ArrayT", np.ndarray, jax.Array)  # works on host and device arrays alike
_MIN_SPREAD = 1e-4


@dataclass(frozen=True)
class Normalizer:
    """An affine map x ↦ (x − offset) / scale, applied to the last axis."""

    offset: Float[np.ndarray, " d"]
    scale: Float[np.ndarray, " d"]

    def __post_init__(self) -> None:
        if self.offset.shape != self.scale.shape or self.offset.ndim != 1:
            raise ValueError(
                f"offset {self.offset.shape} and scale {self.scale.shape} must be equal 1-d shapes"
            )
        if not np.all(np.isfinite(self.offset)) or not np.all(self.scale > 0):
            raise ValueError("normalizer needs finite offsets and positive scales")

    @classmethod
    def fit(cls, values: Float[np.ndarray, "n d"], mode: Mode) -> Normalizer:
        """Fit on a [N, D] array of samples."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise ValueError(f"need a non-empty [N, D] array, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("cannot fit normalization statistics on NaN or Inf values")
        if mode == "minmax":
            lo, hi = values.min(axis=0), values.max(axis=0)
            offset, scale = (hi + lo) / 2.0, (hi - lo) / 2.0
        elif mode == "meanstd":
            offset, scale = values.mean(axis=0), values.std(axis=0)
        else:
            raise ValueError(f"unknown normalization mode {mode!r}")
        degenerate = scale < _MIN_SPREAD
        offset = np.where(degenerate, 0.0, offset)
        scale = np.where(degenerate, 1.0, scale)
        return cls(offset.astype(np.float32), scale.astype(np.float32))

    def normalize(self, x: ArrayT) -> ArrayT:
        """x [..., D] → normalized [..., D]."""
        return (x - self.offset) / self.scale

    def unnormalize(self, x: ArrayT) -> ArrayT:
        """normalized [..., D] → x [..., D]."""
        return x * self.scale + self.offset

    def to_dict(self) -> dict[str, list[float]]:
        return {"offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> Normalizer:
        return cls(np.asarray(d["offset"], np.float32), np.asarray(d["scale"], np.float32))


@dataclass(frozen=True)
class NormalizationStats:
    """The normalizers a policy needs; copied into every checkpoint so inference needs no dataset."""

    action: Normalizer
    state: Normalizer

    @classmethod
    def fit(cls, actions: Float[np.ndarray, "n a"], states: Float[np.ndarray, "n s"]) -> NormalizationStats:
        return cls(action=Normalizer.fit(actions, "minmax"), state=Normalizer.fit(states, "meanstd"))

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        return {"action": self.action.to_dict(), "state": self.state.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> NormalizationStats:
        return cls(action=Normalizer.from_dict(d["action"]), state=Normalizer.from_dict(d["state"]))
