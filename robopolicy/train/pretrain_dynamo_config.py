"""Configuration of a DynaMo pretraining run."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.train.loop_config import LoopConfig
from robopolicy.train.optimizer import OptimizerConfig

# DynaMo's paper setting: AdamW at a constant lr 1e-4, betas (0.9, 0.999), no weight decay, gradients
# clipped at norm 0.1.
DYNAMO_OPTIMIZER = OptimizerConfig(
    learning_rate=1e-4,
    b1=0.9,
    b2=0.999,
    weight_decay=0.0,
    schedule="constant",
    warmup_steps=0,
    grad_clip_norm=0.1,
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
        if self.probe_ridge < 0:
            raise ValueError(f"PretrainDynamoConfig: probe_ridge must be >= 0, got {self.probe_ridge}")
