"""1 device vs 8 simulated CPU devices: the same losses within 1e-5, data-parallel and with FSDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


def _start(out: Path, devices: int, fsdp: int, min_shard_size: int) -> subprocess.Popen:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, str(HERE / "sharded_run.py"), str(out), str(fsdp), str(min_shard_size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _losses(proc: subprocess.Popen, devices: int) -> list[float]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["devices"] == devices
    return result["losses"]


@pytest.mark.slow
def test_one_device_and_eight_simulated_devices_give_the_same_losses(tmp_path):
    # The three runs go side by side: most of each is start-up and compilation.
    runs = [
        _start(tmp_path / "one", 1, 1, 2**14),
        _start(tmp_path / "dp", 8, 1, 2**14),
        # min_shard_size 64 so that the small model's kernels really are split over fsdp.
        _start(tmp_path / "fsdp", 8, 2, 64),
    ]
    single, data_parallel, fsdp = (_losses(p, d) for p, d in zip(runs, (1, 8, 8), strict=True))
    assert len(single) == 3
    np.testing.assert_allclose(data_parallel, single, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fsdp, single, rtol=0, atol=1e-5)
