"""A dataset's own robust range per dimension: where a state or action value stops being plausible.

The range is median ± `OUTLIER_MADS` × scale, per dimension, over every step of the dataset. The scale
is the median absolute deviation (MAD) from the median, which a few wild values (a 1e9 action) cannot
move, floored for dimensions whose MAD is (nearly) 0: a gripper at +1 in most steps, or a dimension that
never changes, has MAD 0 and would otherwise flag every value off its median. The floor is
`MAD_FLOOR_FRACTION` of the largest of the dimension's spread between its 1st and 99th percentiles,
|median| and 1, so such a dimension flags only values more than 10× that largest from its median (a ±1
gripper: more than 20 from its median; a constant 0: beyond ±10). The percentiles are taken inward
(the nearest sample at or inside each), so the most extreme value on either side, and up to 1 % of the
steps in large datasets, never widens the spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

OUTLIER_MADS = 1000.0  # values beyond this many MADs from the median are implausible
MAD_FLOOR_FRACTION = 0.01


@dataclass(frozen=True)
class RobustRange:
    """Per-dimension [low, high] plausible values, from the median and the (floored) MAD."""

    median: Float[np.ndarray, " d"]
    scale: Float[np.ndarray, " d"]
    factor: float = OUTLIER_MADS

    @classmethod
    def of(cls, values: Float[np.ndarray, "n d"], factor: float = OUTLIER_MADS) -> RobustRange:
        """The robust range of N samples of a D-dim quantity (finite values, N ≥ 1)."""
        values = np.asarray(values, np.float64)
        median = np.median(values, axis=0)
        mad = np.median(np.abs(values - median), axis=0)
        q01 = np.quantile(values, 0.01, axis=0, method="higher")
        q99 = np.quantile(values, 0.99, axis=0, method="lower")
        floor = MAD_FLOOR_FRACTION * np.maximum(np.maximum(q99 - q01, np.abs(median)), 1.0)
        return cls(median, np.maximum(mad, floor), factor)

    @property
    def low(self) -> Float[np.ndarray, " d"]:
        return self.median - self.factor * self.scale

    @property
    def high(self) -> Float[np.ndarray, " d"]:
        return self.median + self.factor * self.scale


def outside(
    values: Float[np.ndarray, "t d"], low: Float[np.ndarray, " d"], high: Float[np.ndarray, " d"]
) -> Bool[np.ndarray, "t d"]:
    """Which values lie strictly below `low` or above `high` of their dimension."""
    values = np.asarray(values)
    return (values < low) | (values > high)
