"""Mesh shape and sharding rules; the multi-device part runs in a subprocess with 8 simulated CPUs."""

import os
import subprocess
import sys
import textwrap

import pytest
from jax.sharding import PartitionSpec

from robopolicy.train.mesh import MeshConfig, param_partition_spec


def test_partition_spec_shards_largest_divisible_axis():
    assert param_partition_spec((256, 512), 4, 1024) == PartitionSpec(None, "fsdp")
    assert param_partition_spec((512, 256), 4, 1024) == PartitionSpec("fsdp", None)
    # 3 does not divide 514, so the other axis takes the split.
    assert param_partition_spec((96, 514), 3, 1024) == PartitionSpec("fsdp", None)
    # Ties go to the later axis.
    assert param_partition_spec((3, 3, 64, 64), 8, 1024) == PartitionSpec(None, None, None, "fsdp")


def test_partition_spec_replicates_small_or_indivisible():
    assert param_partition_spec((64,), 4, 1024) == PartitionSpec()
    assert param_partition_spec((33, 65), 4, 1) == PartitionSpec()
    assert param_partition_spec((1024, 1024), 1, 1) == PartitionSpec()
    assert param_partition_spec((), 8, 1) == PartitionSpec()


def test_mesh_config_shape_and_errors():
    assert MeshConfig().shape(8) == (8, 1)
    assert MeshConfig(fsdp=4).shape(8) == (2, 4)
    assert MeshConfig(data=2, fsdp=4).shape(8) == (2, 4)
    with pytest.raises(ValueError, match="does not divide"):
        MeshConfig(fsdp=3).shape(8)
    with pytest.raises(ValueError, match="devices"):
        MeshConfig(data=4, fsdp=4).shape(8)
    with pytest.raises(ValueError, match="fsdp"):
        MeshConfig(fsdp=0)


_EIGHT_DEVICES = textwrap.dedent(
    """
    import jax, numpy as np
    from robopolicy.data.global_batch import to_global_batch
    from robopolicy.train.mesh import MeshConfig, make_mesh, state_shardings
    assert jax.device_count() == 8
    mesh = make_mesh(MeshConfig(fsdp=4))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 4}, mesh.shape
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    state = {"w": np.zeros((64, 128), np.float32), "b": np.zeros((128,), np.float32)}
    sh = state_shardings(state, mesh, min_shard_size=1024)
    placed = jax.device_put(state, sh)
    assert placed["w"].addressable_shards[0].data.shape == (64, 32)
    assert placed["b"].addressable_shards[0].data.shape == (128,)
    batch = to_global_batch({"x": np.arange(16 * 3, dtype=np.float32).reshape(16, 3)}, mesh)
    assert batch["x"].shape == (16, 3)
    assert {s.data.shape for s in batch["x"].addressable_shards} == {(2, 3)}
    # Auto axes: a matmul contracting a sharded dimension compiles (Explicit axes would refuse it).
    y = jax.jit(lambda a, w: a["x"] @ w[:3])(batch, placed["w"])
    np.testing.assert_allclose(np.asarray(y), 0.0)
    print("ok")
    """
)


def test_eight_simulated_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", _EIGHT_DEVICES], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
