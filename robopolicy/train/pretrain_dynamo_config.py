"""Configuration of a DynaMo pretraining run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from robopolicy.models.dynamo_config import DYNAMO_ENVIRONMENTS, DynamoConfig
from robopolicy.train.loop_config import LoopConfig
from robopolicy.train.optimizer import OptimizerConfig

# DynaMo's reference setting (jeffacce/dynamo_ssl `configs/train_*.yaml`): AdamW at lr 1e-4, betas
# (0.9, 0.999), no weight decay, the gradients of the encoder, inverse and forward models each
# clipped at norm 0.1, a linear warm-up then a half-cosine to 0 (`use_lr_scheduling`, on in every
# environment but LIBERO, whose lr stays constant). The reference warms up for 5 of its 40 epochs:
# 1250 steps is that eighth of the default 10000 steps (set `warmup_steps` to match other lengths).
DYNAMO_OPTIMIZER = OptimizerConfig(
    learning_rate=1e-4,
    b1=0.9,
    b2=0.999,
    weight_decay=0.0,
    schedule="warmup_cosine",
    warmup_steps=1250,
    grad_clip_norm=0.1,
    grad_clip="per_module",
)


@dataclass(frozen=True)
class PretrainDynamoConfig(LoopConfig):
    """What to pretrain, on what, and how often to probe; the run settings (`out`, `steps`,
    `optimizer`, `mesh`, `log`, ...) are those every training run shares.

    Attributes:
        dataset: an RLDS dataset folder written by `robopolicy collect`, or any RLDS dataset that
            `mapping` describes.
        mapping: key mapping of the dataset: "auto", a preset name from `datasets/key_mappings/` or a
            TOML file (see docs/datasets.md).
        epochs: training length in passes over the training windows (every window of `model.window`
            frames of the pretraining episodes): steps = ⌈epochs · windows / batch_size⌉, replacing
            `steps` (0: use `steps`). The reference trains 40 epochs at batch 64.
        probe_every: steps between embedding probes (0: only before training and at the end).
        holdout_fraction: share of episodes (the highest episode ids) kept out of pretraining and
            used as the probes' test split.
        probe_frames: at most this many frames per split are embedded for the probes.
        probe_ridge: ridge penalty of the linear probe (on standardised features).
        probe_k: neighbours of the kNN probe.
        model: the DynaMo model; `image_size` is taken from the dataset.
    """

    out: str = "runs/dynamo"
    steps: int = 10000
    epochs: float = 0.0
    optimizer: OptimizerConfig = field(default_factory=lambda: DYNAMO_OPTIMIZER)
    dataset: str = "runs/quickstart/dataset"
    mapping: str = "auto"
    probe_every: int = 1000
    holdout_fraction: float = 0.2
    probe_frames: int = 2000
    probe_ridge: float = 1e-3
    probe_k: int = 5
    model: DynamoConfig = field(default_factory=DynamoConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.probe_k, int) or self.probe_k < 1:
            raise ValueError(
                f"PretrainDynamoConfig: probe_k must be a positive integer, got {self.probe_k!r}"
            )
        if self.probe_every < 0 or self.probe_frames < 2:
            raise ValueError("PretrainDynamoConfig: need probe_every >= 0 and probe_frames >= 2")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(
                f"PretrainDynamoConfig: holdout_fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        if not self.epochs >= 0:
            raise ValueError(f"PretrainDynamoConfig: epochs must be >= 0, got {self.epochs}")
        if self.probe_ridge < 0:
            raise ValueError(f"PretrainDynamoConfig: probe_ridge must be >= 0, got {self.probe_ridge}")

    def total_steps(self, windows: int) -> int:
        """`steps`, or with `epochs` > 0 the steps of that many passes over `windows` training windows."""
        if self.epochs == 0:
            return self.steps
        return max(1, math.ceil(self.epochs * windows / self.batch_size))


def _environment_presets() -> dict[str, PretrainDynamoConfig]:
    """One preset per environment of the reference, with its model settings (`DYNAMO_ENVIRONMENTS`)
    and its optimizer: LIBERO keeps a constant lr (`use_lr_scheduling: False` in
    `train_libero_goal.yaml`), Push-T decays weights by 1e-6 (`train_pusht.yaml`)."""
    constant = dataclasses.replace(DYNAMO_OPTIMIZER, schedule="constant", warmup_steps=0)
    optimizers = {"libero": constant, "pusht": dataclasses.replace(DYNAMO_OPTIMIZER, weight_decay=1e-6)}
    return {
        env: PretrainDynamoConfig(model=model, optimizer=optimizers.get(env, DYNAMO_OPTIMIZER))
        for env, model in DYNAMO_ENVIRONMENTS.items()
    }


DYNAMO_ENVIRONMENT_PRESETS = _environment_presets()
