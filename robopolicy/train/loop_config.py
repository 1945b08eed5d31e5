"""The settings every training run shares, policy training and DynaMo pretraining alike.

`TrainConfig` and `PretrainDynamoConfig` extend `LoopConfig`, so both commands take the same run
flags (`--out`, `--steps`, `--batch-size`, `--seed`, `--checkpoint-every`, ...) and the same
`--optimizer.*`, `--mesh.*` and `--log.*` groups, and the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.train.mesh import MeshConfig
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_logging import LogConfig


@dataclass(frozen=True)
class LoopConfig:
    """How long to train, where to keep the run, and on which devices.

    Attributes:
        out: run folder; checkpoints go to `out/checkpoints/`, metrics to `out/train_log.jsonl` and
            `out/tensorboard/`. An existing run there is resumed.
        steps: total optimizer steps.
        batch_size: samples per step, over all devices and hosts.
        seed: seeds initialisation, data order and the random draws of the steps.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many recent checkpoints to keep.
        keep_period: also keep every checkpoint whose step is a multiple of this (None: only the last
            `keep_checkpoints`).
        optimizer: AdamW, its learning-rate schedule and gradient clipping.
        mesh: the (data, fsdp) device mesh; batch_size must be a multiple of its devices.
        log: loss read-outs, TensorBoard and wandb.
    """

    out: str = "runs/train"
    steps: int = 3000
    batch_size: int = 64
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    keep_period: int | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        name = type(self).__name__
        for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")
        if self.keep_period is not None and self.keep_period < 1:
            raise ValueError(f"{name}: keep_period must be None or >= 1, got {self.keep_period}")
