"""Everything training reads from a dataset: policy shape, statistics, vocabulary and the batch stream."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import grain
import numpy as np

from robopolicy.data.dataset_stats import DatasetStats, load_or_compute_stats
from robopolicy.data.episode import Episode
from robopolicy.data.instruction_vocab import InstructionVocab
from robopolicy.data.normalization import NormalizationStats
from robopolicy.data.pipeline import window_dataset
from robopolicy.data.rlds_reader import find_dataset_dir, load_episodes
from robopolicy.data.window_source import WindowSource, WindowSpec, episode_arrays, validate_episodes
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.train_config import TrainConfig


@dataclass(frozen=True)
class TrainingData:
    """The policy config completed from the data, what checkpoints carry, and this host's batches."""

    policy_config: PolicyConfig
    stats: NormalizationStats
    dataset_stats: DatasetStats
    vocab: InstructionVocab
    source: WindowSource
    batches: grain.MapDataset
    task: str
    instruction: str
    num_episodes: int


def policy_config_for(episodes: list[Episode], requested: PolicyConfig, where: str) -> PolicyConfig:
    """The requested policy config with its data-dependent fields taken from the dataset."""
    first = episodes[0]
    missing = [cam for cam in requested.cameras if cam not in first.frames]
    if missing:
        raise UserError(f"{where}: dataset has no camera {missing[0]!r} (it has {sorted(first.frames)})")
    return dataclasses.replace(
        requested,
        image_size=int(first.frames[requested.cameras[0]].shape[1]),
        state_dim=int(first.state.shape[1]),
        action_dim=int(first.action.shape[1]),
    )


def prepare_training_data(config: TrainConfig, episodes: list[Episode] | None = None) -> TrainingData:
    """Load (unless `episodes` are given), validate, normalize and window the dataset of `config`.

    Statistics come from the JSON stored next to the dataset (written on first use); with in-memory
    `episodes` they are computed and not stored.
    """
    dataset_dir: Path | None = None
    if episodes is None:
        dataset_dir = find_dataset_dir(config.dataset)
        episodes = load_episodes(dataset_dir)
    if not episodes:
        raise UserError(f"{config.dataset}: no episodes")
    policy_cfg = policy_config_for(episodes, config.policy, config.dataset)
    arrays = [episode_arrays(e, policy_cfg.cameras) for e in episodes]
    validate_episodes(arrays, config.dataset)  # before statistics, so bad values get a precise error
    dataset_stats = load_or_compute_stats(dataset_dir, episodes)
    stats = NormalizationStats.from_key_stats(dataset_stats.keys, config.data.normalization)
    vocab = dataset_stats.vocab(config.data.instruction_length)
    source = WindowSource(
        arrays,
        WindowSpec(policy_cfg.obs_horizon, policy_cfg.action_horizon, config.data.frame_stride),
        name=config.dataset,
        normalizers={"state": stats.state, "action": stats.action},
        episode_values={"instruction": np.stack([vocab.encode(e.instruction) for e in episodes])},
    )
    if len(source) < config.batch_size:
        raise UserError(
            f"{config.dataset}: {len(source)} samples, fewer than one batch of {config.batch_size}"
        )
    return TrainingData(
        policy_config=policy_cfg,
        stats=stats,
        dataset_stats=dataset_stats,
        vocab=vocab,
        source=source,
        batches=window_dataset([source], config.batch_size, config.seed),
        task=episodes[0].task,
        instruction=episodes[0].instruction,
        num_episodes=len(episodes),
    )
