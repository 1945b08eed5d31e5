"""6-step runs for `test_kill_resume.py`, a policy's or (with `dynamo`) DynaMo pretraining's; with
`hang`, the run stops dead after step 4 so the test can SIGKILL it:
python kill_resume_run.py OUT [dynamo] [hang]

The policy run hangs inside its evaluation hook; DynaMo, whose batches are a function of the step,
when its loader is asked for step 5's batch."""

import dataclasses
import sys
import time

import test_pretrain_dynamo
from test_train_resume import SMALL_POLICY, _episodes

from robopolicy.data.image_windows import ImageWindowLoader
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

CONFIG = TrainConfig(
    steps=6,
    batch_size=4,
    checkpoint_every=3,
    keep_checkpoints=5,
    log=LogConfig(every=1),
    eval_every=1,
    policy=SMALL_POLICY,
    optimizer=OptimizerConfig(warmup_steps=2, learning_rate=1e-3),
)


def dynamo_config(out: str):
    return test_pretrain_dynamo._config(out, steps=6, checkpoint_every=3, probe_every=0, probe_frames=16)


def hook(step: int, _params: object) -> dict[str, float]:
    if step == 4 and "hang" in sys.argv[2:]:
        time.sleep(600)
    return {"hook_step": float(step)}


def _hang_before_step_5() -> None:
    batch = ImageWindowLoader.batch

    def hanging(self: ImageWindowLoader, step: int):
        if step == 4:  # 0-based: the batch of the fifth step
            time.sleep(600)
        return batch(self, step)

    ImageWindowLoader.batch = hanging


if __name__ == "__main__":
    out = sys.argv[1]
    if "dynamo" in sys.argv[2:]:
        if "hang" in sys.argv[2:]:
            _hang_before_step_5()
        pretrain_dynamo(dynamo_config(out), test_pretrain_dynamo._episodes(), progress=False)
    else:
        train(
            dataclasses.replace(CONFIG, out=out),
            _episodes(),
            progress=False,
            make_eval_hook=lambda meta, run_dir: hook,
        )
