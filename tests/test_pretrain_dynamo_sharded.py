"""DynaMo pretraining over 2 (simulated CPU) devices, data-parallel and with FSDP, matches the 1-device run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robopolicy.train.pretrain_dynamo import pretrain_dynamo

_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import jax
from test_pretrain_dynamo import _config, _episodes
from robopolicy.train.mesh import MeshConfig
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
assert jax.device_count() == 2
losses = {{}}
# min_shard_size 64 so that the small model's kernels really are split over fsdp.
for name, mesh in (("dp", MeshConfig()), ("fsdp", MeshConfig(data=1, fsdp=2, min_shard_size=64))):
    config = _config({out!r} + "/" + name, steps=2, probe_every=0, mesh=mesh)
    losses[name] = pretrain_dynamo(config, _episodes(), progress=False).losses
print(json.dumps(losses))
"""


@pytest.mark.slow
def test_two_devices_give_the_one_device_losses(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_pretrain_dynamo import _config, _episodes

    single = pretrain_dynamo(_config(tmp_path / "one", steps=2, probe_every=0), _episodes(), progress=False)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    script = _SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path / "two"))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("dp", "fsdp"):
        assert [s for s, _ in sharded[name]] == [s for s, _ in single.losses] == [1, 2]
        np.testing.assert_allclose([v for _, v in sharded[name]], [v for _, v in single.losses], rtol=1e-4)
        assert (tmp_path / "two" / name / "checkpoints" / "2").is_dir()
