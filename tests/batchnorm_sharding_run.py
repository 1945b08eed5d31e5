"""One DynaMo pretraining step with the BatchNorm encoder on all (simulated) devices; prints the loss
and the updated running statistics as JSON.

`test_sharded_training.py` starts it in fresh processes, since the number of simulated CPU devices is
fixed when jax starts: python batchnorm_sharding_run.py FSDP
"""

import dataclasses
import json
import sys

import jax
import numpy as np
from flax import nnx
from test_pretrain_dynamo import CAMERAS, MODEL, _episodes

from robopolicy.data.global_batch import to_global_batch
from robopolicy.data.image_windows import ImageWindowLoader
from robopolicy.models.dynamo import DynaMo, embed_views
from robopolicy.train.loop import init_state, make_step
from robopolicy.train.mesh import MeshConfig, make_mesh, state_shardings
from robopolicy.train.optimizer import make_optimizer
from robopolicy.train.pretrain_dynamo import dynamo_loss
from robopolicy.train.pretrain_dynamo_config import DYNAMO_OPTIMIZER

if __name__ == "__main__":
    fsdp = int(sys.argv[1])
    config = dataclasses.replace(MODEL, encoder="resnet18_avgpool", feature_dim=512, window=2, image_size=16)
    model = DynaMo(config, rngs=nnx.Rngs(0))
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    tx = make_optimizer(DYNAMO_OPTIMIZER, 2)
    state = init_state(params, tx, 0, False, {"batch_stats": stats})
    mesh = make_mesh(MeshConfig(fsdp=fsdp, min_shard_size=64))
    shardings = state_shardings(state, mesh, 64)
    step = make_step(
        dynamo_loss(graphdef, nnx.graphdef(model.encoder), config), tx, mesh=mesh, shardings=shardings
    )
    images = ImageWindowLoader(_episodes(), CAMERAS, config.window, batch_size=8, seed=0).batch(0)
    # The statistics one device's quarter of the batch alone would give (what per-device BatchNorm,
    # without synchronisation, would keep on that device); before the step, which donates the state.
    quarter = {cam: x[:2] for cam, x in images.items()}
    local = nnx.view(nnx.clone(model.encoder), use_running_average=False)
    embed_views(local, quarter, CAMERAS)
    state, metrics = step(jax.device_put(state, shardings), to_global_batch(images, mesh))
    new = state["batch_stats"]["encoder"]["stem_norm"]
    print(
        json.dumps(
            {
                "devices": jax.device_count(),
                "loss": float(metrics["loss"]),
                "mean": np.asarray(new["mean"][...]).tolist(),
                "var": np.asarray(new["var"][...]).tolist(),
                "quarter_mean": np.asarray(local.stem_norm.mean[...]).tolist(),
            }
        )
    )
