"""Shuffled batch indices as a pure function of the step number, for in-memory loaders.

Policy training reads through the grain pipeline (`robopolicy.data.pipeline`), whose iterator state
is checkpointed; small loaders that hold everything in memory (DynaMo's image windows) need no
iterator state at all when the batch is a function of (seed, step).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Int


class EpochSampler:
    """Each epoch is a fresh permutation seeded by (seed, epoch); the last partial batch is dropped.

    Batch s is therefore the same whether a run got there directly or resumed from a checkpoint.
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
