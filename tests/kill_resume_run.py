"""A 6-step training run for `test_kill_resume.py`; with `hang`, it stops dead after step 4
(inside the evaluation hook) so the test can SIGKILL it: python kill_resume_run.py OUT [hang]"""

import sys
import time

from test_train_resume import SMALL_POLICY, _episodes

from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.trainer import train

CONFIG = TrainConfig(
    steps=6,
    batch_size=4,
    checkpoint_every=3,
    keep_checkpoints=5,
    log_every=1,
    eval_every=1,
    policy=SMALL_POLICY,
    optimizer=OptimizerConfig(warmup_steps=2, learning_rate=1e-3),
)


def hook(step: int, _params: object) -> dict[str, float]:
    if step == 4 and "hang" in sys.argv[2:]:
        time.sleep(600)
    return {"hook_step": float(step)}


if __name__ == "__main__":
    import dataclasses

    train(dataclasses.replace(CONFIG, out=sys.argv[1]), _episodes(), progress=False, eval_hook=hook)
