"""Configuration of a DynaMo pretraining run."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.models.dynamo_config import DynamoConfig


@dataclass(frozen=True)
class PretrainDynamoConfig:
    """What to pretrain, on what, for how long, and how often to probe.

    Attributes:
        dataset: an RLDS dataset folder written by `robopolicy collect`, or any RLDS dataset that
            `mapping` describes.
        mapping: key mapping of the dataset: "auto", a preset name from `datasets/key_mappings/` or a
            TOML file (see docs/datasets.md).
        out: run folder; checkpoints go to `out/checkpoints/`, the log to `out/train_log.jsonl`.
            An existing run there is resumed.
        steps: total optimizer steps.
        batch_size: windows per step (paper: 64).
        seed: seeds initialisation and data order.
        learning_rate, weight_decay, b1, b2: AdamW (paper: lr 1e-4; no schedule).
        grad_clip_norm: global-norm gradient clipping (paper: 0.1).
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many recent checkpoints to keep.
        log_every: steps between loss read-outs (each forces a device sync).
        probe_every: steps between embedding probes (0: only before training and at the end).
        holdout_fraction: share of episodes (the highest episode ids) kept out of pretraining and
            used as the probes' test split.
        probe_frames: at most this many frames per split are embedded for the probes.
        probe_ridge: ridge penalty of the linear probe (on standardised features).
        probe_k: neighbours of the kNN probe.
        model: the DynaMo model; `image_size` is taken from the dataset.
    """

    dataset: str = "runs/quickstart/dataset"
    mapping: str = "auto"
    out: str = "runs/dynamo"
    steps: int = 10000
    batch_size: int = 64
    seed: int = 0
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    grad_clip_norm: float = 0.1
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    probe_every: int = 1000
    holdout_fraction: float = 0.2
    probe_frames: int = 2000
    probe_ridge: float = 1e-3
    probe_k: int = 5
    model: DynamoConfig = field(default_factory=DynamoConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every", "probe_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PretrainDynamoConfig: {name} must be a positive integer, got {value!r}")
        if self.probe_every < 0 or self.probe_frames < 2:
            raise ValueError("PretrainDynamoConfig: need probe_every >= 0 and probe_frames >= 2")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(
                f"PretrainDynamoConfig: holdout_fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        if self.learning_rate <= 0 or self.grad_clip_norm <= 0 or self.weight_decay < 0:
            raise ValueError(
                "PretrainDynamoConfig: need learning_rate > 0, grad_clip_norm > 0 and weight_decay >= 0"
            )
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1) or self.probe_ridge < 0:
            raise ValueError("PretrainDynamoConfig: betas must be in [0, 1) and probe_ridge >= 0")
