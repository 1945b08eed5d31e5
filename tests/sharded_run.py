"""Runs a few training steps on the mesh given on the command line and prints the losses as JSON.

`test_sharded_training.py` starts it in fresh processes, since the number of simulated CPU devices
is fixed when jax starts: python sharded_run.py OUT FSDP MIN_SHARD_SIZE
"""

import json
import sys

import jax
from test_train_resume import SMALL_POLICY, _episodes

from robopolicy.train.mesh import MeshConfig
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

if __name__ == "__main__":
    out, fsdp, min_shard = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    config = TrainConfig(
        out=out,
        steps=3,
        batch_size=8,
        log=LogConfig(every=1),
        policy=SMALL_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1, learning_rate=1e-3),
        mesh=MeshConfig(fsdp=fsdp, min_shard_size=min_shard),
    )
    result = train(config, _episodes(), progress=False)
    print(json.dumps({"devices": jax.device_count(), "losses": [loss for _, loss in result.losses]}))
