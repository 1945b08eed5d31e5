"""Device mesh and sharding rules for training: a 2-d (data, fsdp) mesh.

The batch is split over both axes (every device holds a different slice of the global batch), and
large parameters (and their optimizer moments and EMA copies) are split over `fsdp` along their
largest evenly divisible dimension; small ones are replicated, because gathering them would cost more
than storing them. With fsdp = 1 this is plain data parallelism; with data = 1 it is pure FSDP. The
same code runs on 1 CPU device, on simulated CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), on a GPU node and on a multi-host TPU slice:
XLA inserts the collectives from the shardings given to `jax.jit`.

jax ≥ 0.10 makes `jax.make_mesh` default to Explicit axis types, under which auto-sharded einsums
fail with "Contracting dimensions are sharded"; this mesh asks for Auto axes on purpose.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from robopolicy.data.global_batch import BATCH_AXES

# Batches are assembled for this mesh by `robopolicy.data.global_batch.to_global_batch`.
DATA_AXIS, FSDP_AXIS = BATCH_AXES
# Where processes started by hand or by `robopolicy launch` learn their place (the names JAX tools use).
COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = (
    "JAX_COORDINATOR_ADDRESS",
    "JAX_NUM_PROCESSES",
    "JAX_PROCESS_ID",
)


@dataclass(frozen=True)
class MeshConfig:
    """Shape of the training mesh.

    data: devices along the data-parallel axis; -1 = all devices not used by `fsdp`.
    fsdp: devices along the parameter-sharding axis.
    min_shard_size: parameters with fewer elements than this are replicated.
    distributed: call `jax.distributed.initialize()` before building the mesh (multi-process runs).
        On Cloud TPU VMs and SLURM, JAX finds the coordinator and the process ids in the cluster
        environment; elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0),
        JAX_NUM_PROCESSES and JAX_PROCESS_ID in each process (`robopolicy launch` does, on one machine).
    """

    data: int = -1
    fsdp: int = 1
    min_shard_size: int = 2**14
    distributed: bool = False

    def __post_init__(self) -> None:
        if self.data != -1 and self.data < 1:
            raise ValueError(f"MeshConfig.data must be -1 (all remaining devices) or >= 1, got {self.data}")
        if self.fsdp < 1:
            raise ValueError(f"MeshConfig.fsdp must be >= 1, got {self.fsdp}")
        if self.min_shard_size < 1:
            raise ValueError(f"MeshConfig.min_shard_size must be >= 1, got {self.min_shard_size}")

    def shape(self, num_devices: int) -> tuple[int, int]:
        """(data, fsdp) for `num_devices` devices; ValueError when they do not multiply out."""
        if num_devices % self.fsdp:
            raise ValueError(f"MeshConfig.fsdp={self.fsdp} does not divide the {num_devices} devices")
        data = num_devices // self.fsdp if self.data == -1 else self.data
        if data * self.fsdp != num_devices:
            raise ValueError(
                f"mesh data={data} × fsdp={self.fsdp} = {data * self.fsdp} devices, but {num_devices} are present"
            )
        return data, self.fsdp


def make_mesh(config: MeshConfig, devices: list[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp) mesh with Auto axis types over `devices` (default: all devices of all hosts).

    With `config.distributed`, first joins the cluster; call this before anything else touches a device.
    """
    if config.distributed and not jax.distributed.is_initialized():
        # JAX reads JAX_COORDINATOR_ADDRESS itself; what is still unset comes from the cluster environment.
        count, index = os.environ.get(NUM_PROCESSES_ENV), os.environ.get(PROCESS_ID_ENV)
        jax.distributed.initialize(
            num_processes=int(count) if count else None, process_id=int(index) if index else None
        )
    devices = list(jax.devices()) if devices is None else list(devices)
    shape = config.shape(len(devices))
    return jax.make_mesh(shape, BATCH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 2, devices=devices)


def param_partition_spec(shape: tuple[int, ...], fsdp_size: int, min_shard_size: int) -> PartitionSpec:
    """Shard the largest dimension divisible by `fsdp_size` over fsdp; replicate small or indivisible arrays.

    Ties go to the later dimension (the output features of a kernel), which keeps the split of a
    matmul weight aligned with the activations it produces.
    """
    if fsdp_size == 1 or math.prod(shape) < min_shard_size:
        return PartitionSpec()
    best = -1
    for axis, size in enumerate(shape):
        if size % fsdp_size == 0 and (best < 0 or size >= shape[best]):
            best = axis
    if best < 0:
        return PartitionSpec()
    spec: list[str | None] = [None] * len(shape)
    spec[best] = FSDP_AXIS
    return PartitionSpec(*spec)


def state_shardings(state: Any, mesh: Mesh, min_shard_size: int) -> Any:
    """NamedShardings for every leaf of a train-state pytree, following `param_partition_spec`."""
    fsdp = mesh.shape[FSDP_AXIS]

    def rule(leaf: Any) -> NamedSharding:
        shape = tuple(np.shape(leaf))
        return NamedSharding(mesh, param_partition_spec(shape, fsdp, min_shard_size))

    return jax.tree.map(rule, state)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """ValueError unless the global batch splits evenly over the devices and the hosts."""
    devices = mesh.devices.size
    if batch_size % devices:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {devices} devices in the mesh")
    if batch_size % jax.process_count():
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {jax.process_count()} hosts")
