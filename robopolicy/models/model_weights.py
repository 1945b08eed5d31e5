"""What a model's weights are: its parameters and BatchNorm's running statistics.

Both are saved, restored and transplanted together (`nnx.state(model, WEIGHTS)`, which for a model
without BatchNorm is its parameters alone); only parameters get gradients. A policy never updates
running statistics (its encoders run in eval mode), so its training freezes them
(`robopolicy.train.frozen_encoder.frozen_mask`); DynaMo's pretraining step recomputes them from
each batch.
"""

from __future__ import annotations

from flax import nnx

WEIGHTS = nnx.Any(nnx.Param, nnx.BatchStat)
