"""Per-host batches become global arrays split over the (data, fsdp) mesh axes, on 8 simulated CPU
devices. Runs in a subprocess because the device count is fixed when jax starts."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import jax
import numpy as np
from jax.sharding import AxisType, PartitionSpec

from robopolicy.data.global_batch import batch_sharding, to_global_batch
from robopolicy.data.pipeline import HostShard, batch_iterator, window_dataset
from robopolicy.data.window_source import WindowSource, WindowSpec

assert jax.device_count() == 8, jax.devices()
mesh = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
n = 5
episodes = [
    {
        "images/cam": np.full((n, 4, 4, 3), e, np.uint8),
        "state": np.arange(e * n, e * n + n, dtype=np.float32)[:, None],
        "action": np.zeros((n, 2), np.float32),
    }
    for e in range(4)
]
source = WindowSource(episodes, WindowSpec(2, 4), name="d")
local = next(batch_iterator(window_dataset([source], 16, seed=0, shard=HostShard(0, 1)), read_threads=0))
batch = to_global_batch(local, mesh)
images = batch["images"]["cam"]
assert images.shape == (16, 2, 4, 4, 3), images.shape
assert images.sharding.spec == PartitionSpec(("data", "fsdp")), images.sharding.spec
assert batch["action_valid"].sharding == batch_sharding(mesh)
shards = sorted(batch["state"].addressable_shards, key=lambda s: s.index[0].start)
assert len(shards) == 8 and all(s.data.shape == (2, 2, 1) for s in shards)
np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]), local["state"])

# A jitted step sees the global batch and keeps its layout.
total = jax.jit(lambda b: b["state"].sum())(batch)
np.testing.assert_allclose(float(total), local["state"].sum())

only_data = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
assert batch_sharding(only_data).spec == PartitionSpec(("data",))
print("OK")
"""


def test_global_batch_on_eight_cpu_devices():
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
