"""Configuration of a policy training run."""

from __future__ import annotations

from dataclasses import dataclass, field

from robopolicy.data.data_config import DataConfig
from robopolicy.models.augment import ColorJitter
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.ema import EmaConfig
from robopolicy.train.loop_config import LoopConfig


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """What to train, on what; the run settings (`out`, `steps`, `optimizer`, `mesh`, `log`, ...) are
    those every training run shares.

    Attributes:
        dataset: an RLDS dataset folder written by `robopolicy collect`, or any RLDS dataset that
            `mapping` describes.
        mapping: key mapping of the datasets: "auto" (robopolicy's layout, embedding caches, LIBERO),
            a preset name from `datasets/key_mappings/` or a TOML file (see docs/datasets.md).
        extra_datasets: more RLDS datasets mixed into training (same cameras, state and action dims;
            images of any size, resized to the policy's).
        extra_mappings: the key mapping of each extra dataset, in order; empty: `mapping` for all.
        dataset_weights: sampling weight of each dataset, `dataset` first then `extra_datasets`; empty
            means in proportion to their numbers of windows, as if concatenated.
        policy: the policy; the dataset's frames are resized to its `image_size` (with padding, aspect
            kept: `robopolicy.data.image_resize`), its state and action dimensions come from the
            dataset, and a frame_stride of 0 too (see `robopolicy.data.windows.frame_stride_for`).
        data: normalization modes, instruction length and read threads.
        color_jitter: on-device colour jitter of training images (off by default; never at evaluation).
        ema: the EMA of the weights that evaluation and export use.
        mask_padded_actions: leave actions padded past an episode's end out of the loss (default: they
            count, as in Diffusion Policy, teaching the policy to stay put once done).
        eval_every: steps between evaluations of the EMA weights during training (0: never): in
            `robopolicy train`, `eval_episodes` rollouts on the task's first fixed initial states,
            capped at `eval_max_steps` steps (0: the task's cap); from Python, the hook given to `train`.
        encoder: a checkpoint whose image encoder the policy uses. With a policy of encoder="cached"
            (PTP multistage, e.g. preset ptp_stage2): a stage-1 policy run or a DynaMo checkpoint, whose
            encoder embeds `dataset` once; the head trains on the embeddings. With an image-encoder
            policy: a DynaMo checkpoint (`robopolicy pretrain dynamo`); its encoder architecture
            replaces the preset's encoder fields (cameras, sizes, one encoder shared by the cameras)
            and its weights initialise the encoder.
        freeze_encoder: train the policy with its image encoders frozen (no gradient, no optimizer
            update: they keep their pretrained or random initial weights); off: trained end to end.
        dry_run: build the model and optimizer as shapes only, compile the training step for the
            mesh and batch, print parameters, optimizer state and per-device memory, and exit
            without reading the dataset or writing anything (`robopolicy.train.dry_run`).
    """

    dataset: str = "runs/quickstart/dataset"
    mapping: str = "auto"
    extra_datasets: tuple[str, ...] = ()
    extra_mappings: tuple[str, ...] = ()
    dataset_weights: tuple[float, ...] = ()
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    color_jitter: ColorJitter = field(default_factory=ColorJitter)
    ema: EmaConfig = field(default_factory=EmaConfig)
    mask_padded_actions: bool = False
    eval_every: int = 0
    eval_episodes: int = 2
    eval_max_steps: int = 0
    encoder: str = ""
    freeze_encoder: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset_weights and (
            len(self.dataset_weights) != 1 + len(self.extra_datasets) or min(self.dataset_weights) <= 0
        ):
            raise ValueError(
                f"TrainConfig: dataset_weights needs one positive weight per dataset "
                f"({1 + len(self.extra_datasets)}), got {self.dataset_weights}"
            )
        if self.extra_mappings and len(self.extra_mappings) != len(self.extra_datasets):
            raise ValueError(
                f"TrainConfig: extra_mappings needs one mapping per extra dataset "
                f"({len(self.extra_datasets)}), got {len(self.extra_mappings)}"
            )
        if min(self.eval_every, self.eval_episodes, self.eval_max_steps) < 0:
            raise ValueError("TrainConfig: eval_every, eval_episodes and eval_max_steps must be >= 0")

    def dataset_mappings(self) -> tuple[str, ...]:
        """The key mapping of every dataset: `dataset` first, then `extra_datasets`."""
        return (self.mapping, *(self.extra_mappings or (self.mapping,) * len(self.extra_datasets)))
