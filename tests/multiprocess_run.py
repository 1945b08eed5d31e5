"""One process of the runs of `test_multiprocess_training.py`: python multiprocess_run.py OUT MODE [hang]

MODE is `policy` (6 steps of the small policy, a hook every step) or `dynamo` (6 steps of DynaMo
pretraining, with FSDP over several processes). The process joins a `jax.distributed` run when `robopolicy.launch` started it as one
of several (JAX_NUM_PROCESSES > 1); alone, it is the 1-process reference. Every process writes a
marker file for each evaluation hook it builds or runs, so the test can tell which processes did.
With `hang`, the run stops dead after step 4, as `kill_resume_run.py` does, so the test can SIGKILL it.
"""

import dataclasses
import os
import sys
import time

from robopolicy.compile_cache import enable_compile_cache

enable_compile_cache()  # before jax compiles anything: also the many small programs of model init

import jax  # noqa: E402
import kill_resume_run  # noqa: E402
import test_pretrain_dynamo  # noqa: E402
from kill_resume_run import _hang_before_step_5  # noqa: E402
from test_train_resume import _episodes  # noqa: E402

from robopolicy.train.mesh import MeshConfig  # noqa: E402
from robopolicy.train.pretrain_dynamo import pretrain_dynamo  # noqa: E402
from robopolicy.train.trainer import train  # noqa: E402

MESH = MeshConfig(distributed=int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1)
# The kill/resume test's tiny run, at a batch that splits over 2 processes × 2 devices.
CONFIG = dataclasses.replace(kill_resume_run.CONFIG, batch_size=8, mesh=MESH)


def _mark(folder: str, name: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.process{jax.process_index()}"), "w"):
        pass


def make_hook(meta, run_dir):
    _mark(os.path.join(str(run_dir), "hooks"), "built")

    def hook(step, _weights):
        _mark(os.path.join(str(run_dir), "hooks"), f"step{step}")
        if step == 4 and "hang" in sys.argv[3:]:
            time.sleep(600)
        return {"hook_step": float(step)}

    return hook


if __name__ == "__main__":
    out, mode = sys.argv[1], sys.argv[2]
    if mode == "dynamo":
        if "hang" in sys.argv[3:]:
            _hang_before_step_5()
        # Over several processes, FSDP over pairs of devices as well as data parallelism
        # (min_shard_size 64 so that the small model's kernels really are split); the reference is
        # one process on one device, so this run checks sharding and multi-process at once.
        mesh = dataclasses.replace(MESH, fsdp=2, min_shard_size=64) if MESH.distributed else MESH
        config = test_pretrain_dynamo._config(
            out, steps=6, batch_size=8, checkpoint_every=3, probe_every=0, probe_frames=16, mesh=mesh
        )
        pretrain_dynamo(config, test_pretrain_dynamo._episodes(), progress=False)
    else:
        train(dataclasses.replace(CONFIG, out=out), _episodes(), progress=False, make_eval_hook=make_hook)
