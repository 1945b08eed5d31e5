"""Training with the image encoders frozen: their parameters get no gradient, no optimizer state and
no update, so they stay bitwise what they were initialised (or loaded) to. BatchNorm's running
statistics are always frozen the same way: a policy's encoders run in eval mode.

The train state keeps the full parameter tree (checkpoints, EMA weights and exported policies look
like those of any run); only the optimizer and the step know which leaves are frozen.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from flax import nnx

FROZEN, TRAINED = "frozen", "trained"


def _is_encoder_path(path: tuple[Any, ...]) -> bool:
    return any(getattr(k, "key", getattr(k, "name", None)) == "encoders" for k in path)


def frozen_mask(params: Any, freeze_encoder: bool) -> Any:
    """A tree like `params` (an `nnx.State`) with True on the running statistics, and on the leaves of
    the policy's image encoders when freezing."""

    def frozen(path: tuple[Any, ...], v: nnx.Variable) -> nnx.Variable:
        return v.replace(isinstance(v, nnx.BatchStat) or (freeze_encoder and _is_encoder_path(path)))

    return jax.tree_util.tree_map_with_path(frozen, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def any_frozen(mask: Any) -> bool:
    return any(jax.tree.leaves(mask))


def masked_optimizer(tx: optax.GradientTransformation, mask: Any) -> optax.GradientTransformation:
    """`tx` on the trained leaves (gradient clipping included, over those alone); zero updates and no
    optimizer state for the frozen ones."""
    labels = jax.tree.map(lambda frozen: FROZEN if frozen else TRAINED, mask)
    return optax.multi_transform({TRAINED: tx, FROZEN: optax.set_to_zero()}, labels)


def stop_frozen_gradients(params: Any, mask: Any) -> Any:
    """`params` with the frozen leaves behind a stop-gradient, so no backward pass runs through them."""
    return jax.tree.map(lambda p, frozen: jax.lax.stop_gradient(p) if frozen else p, params, mask)


def keep_frozen(new: Any, old: Any, mask: Any) -> Any:
    """`new` with the frozen leaves taken from `old` (adding a zero update could flip a -0.0)."""
    return jax.tree.map(lambda n, o, frozen: o if frozen else n, new, old, mask)
