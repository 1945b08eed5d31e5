"""Per-key normalization statistics and the maps into and out of normalized space.

Each key (state, action, ...) is summarised once per dataset by `KeyStats` (mean, std, min, max and
the 1st/99th percentiles, per dimension), and a policy picks a mode per key to turn them into an
affine `Normalizer`:

- `minmax`: [min, max] → [−1, 1] (Diffusion Policy's action rule), so the gripper's ±1 stays ±1 and the
  flow head's Gaussian noise covers the data range;
- `q01q99`: [q01, q99] → [−1, 1] (openpi's rule), robust to a few outlier steps; values outside land
  beyond ±1 rather than being clipped, so the map stays invertible;
- `meanstd`: zero mean, unit variance (the usual proprio rule).

Dimensions that never vary (e.g. rotation deltas of an expert that holds orientation) would blow up
under any rule, so they pass through with unit scale.

Statistics are plain float32 numpy arrays so they go into checkpoints and JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

import jax
import numpy as np
from jaxtyping import Float

Mode = Literal["minmax", "meanstd", "q01q99"]
MODES: tuple[str, ...] = get_args(Mode)
ArrayT = TypeVar("ArrayT", np.ndarray, jax.Array)  # works on host and device arrays alike
_MIN_SPREAD = 1e-4
_STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


@dataclass(frozen=True)
class KeyStats:
    """Per-dimension summary of one key over every step of a dataset; each field is float32 [D]."""

    mean: Float[np.ndarray, " d"]
    std: Float[np.ndarray, " d"]
    min: Float[np.ndarray, " d"]
    max: Float[np.ndarray, " d"]
    q01: Float[np.ndarray, " d"]
    q99: Float[np.ndarray, " d"]
    count: int

    def __post_init__(self) -> None:
        shapes = {np.shape(getattr(self, name)) for name in _STAT_NAMES}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"KeyStats fields must share one 1-d shape, got {sorted(shapes)}")

    @classmethod
    def compute(cls, values: Float[np.ndarray, "n d"]) -> KeyStats:
        """Summarise a [N, D] array of samples (N steps, D dimensions)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise ValueError(f"need a non-empty [N, D] array, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("cannot fit normalization statistics on NaN or Inf values")
        q01, q99 = np.quantile(values, [0.01, 0.99], axis=0)
        fields = {
            "mean": values.mean(axis=0),
            "std": values.std(axis=0),
            "min": values.min(axis=0),
            "max": values.max(axis=0),
            "q01": q01,
            "q99": q99,
        }
        return cls(**{k: v.astype(np.float32) for k, v in fields.items()}, count=int(values.shape[0]))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def to_dict(self) -> dict[str, list[float] | int]:
        return {**{name: getattr(self, name).tolist() for name in _STAT_NAMES}, "count": self.count}

    @classmethod
    def from_dict(cls, d: dict) -> KeyStats:
        return cls(**{name: np.asarray(d[name], np.float32) for name in _STAT_NAMES}, count=int(d["count"]))


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
    def from_stats(cls, stats: KeyStats, mode: Mode) -> Normalizer:
        """The normalizer of `mode` built from a key's summary."""
        if mode == "minmax":
            lo, hi = stats.min.astype(np.float64), stats.max.astype(np.float64)
        elif mode == "q01q99":
            lo, hi = stats.q01.astype(np.float64), stats.q99.astype(np.float64)
        elif mode == "meanstd":
            lo, hi = None, None
        else:
            raise ValueError(f"unknown normalization mode {mode!r} (choose from {', '.join(MODES)})")
        if lo is None:
            offset, scale = stats.mean.astype(np.float64), stats.std.astype(np.float64)
        else:
            offset, scale = (hi + lo) / 2.0, (hi - lo) / 2.0
        degenerate = scale < _MIN_SPREAD
        offset = np.where(degenerate, 0.0, offset)
        scale = np.where(degenerate, 1.0, scale)
        return cls(offset.astype(np.float32), scale.astype(np.float32))

    @classmethod
    def fit(cls, values: Float[np.ndarray, "n d"], mode: Mode) -> Normalizer:
        """Fit on a [N, D] array of samples."""
        return cls.from_stats(KeyStats.compute(values), mode)

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
class NormalizationConfig:
    """Which mode each key is normalized with.

    Attributes:
        action: mode of the action key (minmax keeps the gripper's ±1 exact).
        state: mode of the proprio state key.
    """

    action: Mode = "minmax"
    state: Mode = "meanstd"

    def __post_init__(self) -> None:
        for key in ("action", "state"):
            if getattr(self, key) not in MODES:
                raise ValueError(
                    f"NormalizationConfig: {key} must be one of {', '.join(MODES)}, got {getattr(self, key)!r}"
                )


@dataclass(frozen=True)
class NormalizationStats:
    """The normalizers a policy needs; copied into every checkpoint so inference needs no dataset."""

    action: Normalizer
    state: Normalizer

    @classmethod
    def fit(
        cls,
        actions: Float[np.ndarray, "n a"],
        states: Float[np.ndarray, "n s"],
        config: NormalizationConfig | None = None,
    ) -> NormalizationStats:
        config = config or NormalizationConfig()
        return cls(action=Normalizer.fit(actions, config.action), state=Normalizer.fit(states, config.state))

    @classmethod
    def from_key_stats(cls, stats: dict[str, KeyStats], config: NormalizationConfig) -> NormalizationStats:
        return cls(
            action=Normalizer.from_stats(stats["action"], config.action),
            state=Normalizer.from_stats(stats["state"], config.state),
        )

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        return {"action": self.action.to_dict(), "state": self.state.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> NormalizationStats:
        return cls(action=Normalizer.from_dict(d["action"]), state=Normalizer.from_dict(d["state"]))
