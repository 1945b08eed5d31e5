"""Named presets for every CLI verb: `robopolicy <verb> --preset NAME`.

`default` is the faithful, full-size setting; `quickstart` is sized so the whole pipeline runs in
about a quarter of an hour on a 2-core CPU; `tiny` exists for smoke tests.
"""

from __future__ import annotations

from robopolicy.data.collect import CollectConfig
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.quickstart import QuickstartConfig
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig

# CPU-sized policy: 64×64 images, a narrow CNN, To=2, H=16, 8 executed actions (Diffusion Policy's setting).
_CPU_POLICY = PolicyConfig(image_size=64, encoder_channels=(16, 32, 64), feature_dim=64, denoiser_width=512)
_TINY_POLICY = PolicyConfig(
    image_size=32, encoder_channels=(8, 16), feature_dim=16, denoiser_width=64, denoiser_depth=1
)

COLLECT = {
    "default": CollectConfig(),
    "quickstart": CollectConfig(num_episodes=100, image_size=64, out="runs/quickstart/dataset"),
    "tiny": CollectConfig(num_episodes=2, image_size=32, out="runs/tiny/dataset"),
}

TRAIN = {
    "default": TrainConfig(),
    "quickstart": TrainConfig(
        steps=3000,
        batch_size=32,
        policy=_CPU_POLICY,
        optimizer=OptimizerConfig(learning_rate=3e-4, warmup_steps=200, weight_decay=1e-3),
        dataset="runs/quickstart/dataset",
        out="runs/quickstart/train",
    ),
    "tiny": TrainConfig(
        steps=5,
        batch_size=4,
        log_every=1,
        checkpoint_every=5,
        policy=_TINY_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1),
        dataset="runs/tiny/dataset",
        out="runs/tiny/train",
    ),
}

EVAL = {
    "default": EvalConfig(),
    "quickstart": EvalConfig(checkpoint="runs/quickstart/train", init_states="0:50"),
    "tiny": EvalConfig(checkpoint="runs/tiny/train", init_states="0:2", video_episodes=1, max_steps=20),
}

QUICKSTART = {
    "default": QuickstartConfig(
        collect=COLLECT["quickstart"], train=TRAIN["quickstart"], eval=EVAL["quickstart"]
    ),
    "tiny": QuickstartConfig(
        out="runs/tiny", collect=COLLECT["tiny"], train=TRAIN["tiny"], eval=EVAL["tiny"]
    ),
}

PRESETS = {"collect": COLLECT, "train": TRAIN, "eval": EVAL, "quickstart": QUICKSTART}
