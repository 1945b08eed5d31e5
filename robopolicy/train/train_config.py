"""Configuration of a training run."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.data.data_config import DataConfig
from robopolicy.models.augment import ColorJitter
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.mesh import MeshConfig
from robopolicy.train.optimizer import OptimizerConfig


@dataclass(frozen=True)
class TrainConfig:
    """What to train, on what, for how long.

    Attributes:
        dataset: an RLDS dataset folder written by `robopolicy collect`, or any RLDS dataset that
            `mapping` describes.
        mapping: key mapping of the datasets: "auto" (robopolicy's layout, embedding caches, LIBERO),
            a preset name from `datasets/key_mappings/` or a TOML file (see docs/datasets.md).
        extra_datasets: more RLDS datasets mixed into training (same cameras, state and action dims).
        dataset_weights: sampling weight of each dataset, `dataset` first then `extra_datasets`; empty
            means in proportion to their numbers of windows, as if concatenated.
        out: run folder; checkpoints go to `out/checkpoints/`. An existing run there is resumed.
        steps: total optimizer steps.
        batch_size: samples per step.
        seed: seeds initialisation, data order and flow noise.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many recent checkpoints to keep.
        keep_period: also keep every checkpoint whose step is a multiple of this (None: only the last
            `keep_checkpoints`).
        log_every: steps between loss read-outs (each forces a device sync, so not every step).
        data: normalization modes, instruction length and read threads.
        color_jitter: on-device colour jitter of training images (off by default; never at evaluation).
        eval_every: steps between evaluations of the EMA weights during training (0: never): the
            given evaluation hook, or else `eval_episodes` rollouts on the task's first fixed initial
            states, capped at `eval_max_steps` steps (0: the task's cap).
        wandb_project: also log to this wandb project (needs the wandb package; "" = off). TensorBoard
            event files are always written to `out/tensorboard/`.
        encoder: a checkpoint whose image encoder the policy uses. With a policy of encoder="cached"
            (PTP multistage, e.g. preset ptp_stage2): a stage-1 policy run or a DynaMo checkpoint, whose
            encoder embeds `dataset` once; the head trains on the embeddings. With an image-encoder
            policy: a DynaMo checkpoint (`robopolicy pretrain dynamo`); its encoder architecture
            replaces the preset's encoder fields (cameras, sizes, one encoder shared by the cameras)
            and its weights initialise the encoder.
        freeze_encoder: train the policy with its image encoders frozen (no gradient, no optimizer
            update: they keep their pretrained or random initial weights); off: trained end to end.
        mesh: the (data, fsdp) device mesh; batch_size must be a multiple of its devices.
        ema_power, ema_max_decay: the EMA of the weights used for evaluation decays with
            min(1 − (1 + step)^−ema_power, ema_max_decay), as in Diffusion Policy.
        mask_padded_actions: leave actions padded past an episode's end out of the loss (default: they
            count, as in Diffusion Policy, teaching the policy to stay put once done).
    """

    dataset: str = "runs/quickstart/dataset"
    mapping: str = "auto"
    extra_datasets: tuple[str, ...] = ()
    dataset_weights: tuple[float, ...] = ()
    out: str = "runs/train"
    steps: int = 3000
    batch_size: int = 64
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    keep_period: int | None = None
    log_every: int = 50
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    color_jitter: ColorJitter = field(default_factory=ColorJitter)
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    mask_padded_actions: bool = False
    mesh: MeshConfig = field(default_factory=MeshConfig)
    eval_every: int = 0
    eval_episodes: int = 2
    eval_max_steps: int = 0
    encoder: str = ""
    freeze_encoder: bool = False
    wandb_project: str = ""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive integer, got {value!r}")
        if self.dataset_weights and (
            len(self.dataset_weights) != 1 + len(self.extra_datasets) or min(self.dataset_weights) <= 0
        ):
            raise ValueError(
                f"TrainConfig: dataset_weights needs one positive weight per dataset "
                f"({1 + len(self.extra_datasets)}), got {self.dataset_weights}"
            )
        if self.keep_period is not None and self.keep_period < 1:
            raise ValueError(f"TrainConfig: keep_period must be None or >= 1, got {self.keep_period}")
        if min(self.eval_every, self.eval_episodes, self.eval_max_steps) < 0:
            raise ValueError("TrainConfig: eval_every, eval_episodes and eval_max_steps must be >= 0")
        if not 0 < self.ema_max_decay < 1 or self.ema_power <= 0:
            raise ValueError("TrainConfig: need 0 < ema_max_decay < 1 and ema_power > 0")
