"""1 device vs 8 simulated CPU devices: the same losses within 1e-5, data-parallel and with FSDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _losses(out: Path, devices: int, fsdp: int, min_shard_size: int) -> list[float]:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(HERE / "sharded_run.py"), str(out), str(fsdp), str(min_shard_size)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices"] == devices
    return result["losses"]


def test_one_device_and_eight_simulated_devices_give_the_same_losses(tmp_path):
    single = _losses(tmp_path / "one", 1, 1, 2**14)
    data_parallel = _losses(tmp_path / "dp", 8, 1, 2**14)
    # min_shard_size 64 so that the small model's kernels really are split over fsdp.
    fsdp = _losses(tmp_path / "fsdp", 8, 2, 64)
    assert len(single) == 3
    np.testing.assert_allclose(data_parallel, single, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fsdp, single, rtol=0, atol=1e-5)
