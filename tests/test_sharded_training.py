"""1 device vs 8 simulated CPU devices: the same losses within 1e-5, data-parallel and with FSDP; and
BatchNorm's statistics over the global batch whatever the number of devices (SyncBatchNorm)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


def _start(out: Path, devices: int, fsdp: int, min_shard_size: int) -> subprocess.Popen:
    return _start_script(devices, "sharded_run.py", str(out), str(fsdp), str(min_shard_size))


def _start_script(devices: int, script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.Popen(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _result(proc: subprocess.Popen, devices: int) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["devices"] == devices
    return result


def _losses(proc: subprocess.Popen, devices: int) -> list[float]:
    return _result(proc, devices)["losses"]


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


@pytest.mark.slow
def test_batchnorm_statistics_are_those_of_the_global_batch_on_any_number_of_devices():
    # One DynaMo step with the BatchNorm ResNet-18 on 1 device, and on 4 (data 2 × fsdp 2): the jitted
    # step normalises over the whole sharded batch, so loss and running statistics agree, and differ
    # from what a device's own quarter of the batch would give.
    one, four = (
        _start_script(1, "batchnorm_sharding_run.py", "1"),
        _start_script(4, "batchnorm_sharding_run.py", "2"),
    )
    single, sharded = _result(one, 1), _result(four, 4)
    np.testing.assert_allclose(sharded["loss"], single["loss"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(sharded["mean"], single["mean"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(sharded["var"], single["var"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(sharded["quarter_mean"], sharded["mean"], atol=1e-4)
