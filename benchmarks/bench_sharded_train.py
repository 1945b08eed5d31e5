"""Steps/s of the sharded train step on 1 vs 8 simulated CPU devices, for a small image config.

Each device count runs in its own process (the simulated device count is fixed when jax starts):
    PYTHONPATH=. python benchmarks/bench_sharded_train.py
Simulated devices share the machine's cores, so the ratio measures partitioning overhead and checks
that the sharded program runs, not a speed-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

STEPS = 30


def _child(devices: int, fsdp: int) -> None:
    import jax
    import numpy as np

    from robopolicy.data.episode import Episode
    from robopolicy.models.policy_config import PolicyConfig
    from robopolicy.train.mesh import MeshConfig
    from robopolicy.train.optimizer import OptimizerConfig
    from robopolicy.train.train_config import TrainConfig
    from robopolicy.train.train_logging import LogConfig
    from robopolicy.train.trainer import train

    rng = np.random.default_rng(0)
    episodes = [
        Episode(
            frames={c: rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
            state=rng.normal(size=(40, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(40, 7)).astype(np.float32),
            reward=np.zeros(40, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
        )
        for i in range(8)
    ]
    policy = PolicyConfig(image_size=32, encoder_channels=(8, 16), feature_dim=32, denoiser_width=128)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            out=out,
            steps=STEPS,
            batch_size=16,
            log=LogConfig(every=STEPS),
            checkpoint_every=STEPS,
            policy=policy,
            optimizer=OptimizerConfig(warmup_steps=1),
            mesh=MeshConfig(fsdp=fsdp, min_shard_size=1024),
        )
        t0 = time.perf_counter()
        result = train(config, episodes, progress=False)
        wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "fsdp": fsdp,
                "steps_per_s": result.steps_per_second,
                "wall_s": wall,
            }
        )
    )


def main() -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from machine import machine_line

    print(machine_line())
    for devices, fsdp in ((1, 1), (8, 1), (8, 2)):
        env = dict(
            os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu"
        )
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(devices), str(fsdp)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        print(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
