"""Per-host batches → global `jax.Array`s laid out for the training mesh.

Each host holds its own slice of global batch s (see `robopolicy.data.pipeline`); the batch axis is
split over the mesh's data-parallel axes, ("data", "fsdp") — FSDP shards parameters over "fsdp" but
still feeds it distinct examples — and every other axis is replicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXES = ("data", "fsdp")


def batch_sharding(mesh: Mesh, batch_axes: Sequence[str] = BATCH_AXES) -> NamedSharding:
    """Leading (batch) axis split over those of `batch_axes` the mesh has; the rest replicated."""
    axes = tuple(a for a in batch_axes if a in mesh.axis_names)
    if not axes:
        raise ValueError(f"mesh axes {mesh.axis_names} include none of the batch axes {tuple(batch_axes)}")
    return NamedSharding(mesh, PartitionSpec(axes))


def to_global_batch(local_batch: Any, mesh: Mesh, batch_axes: Sequence[str] = BATCH_AXES) -> Any:
    """Every leaf [B_local, ...] of a host's batch → a global jax.Array [B_local · hosts, ...]."""
    sharding = batch_sharding(mesh, batch_axes)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )
