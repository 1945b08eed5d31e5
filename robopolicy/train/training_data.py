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
from robopolicy.data.window_source import (
    WindowSource,
    WindowSpec,
    decoded_frames,
    episode_arrays,
    validate_episodes,
    with_embeddings,
)
from robopolicy.data.windows import frame_stride_for
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.train_config import TrainConfig


@dataclass(frozen=True)
class TrainingData:
    """The policy config completed from the data, what checkpoints carry, and this host's batches."""

    native_image_shapes: dict[str, dict[str, tuple[int, ...]]]  # dataset → camera → stored [H, W, 3]
    policy_config: PolicyConfig
    stats: NormalizationStats
    dataset_stats: DatasetStats
    vocab: InstructionVocab
    sources: tuple[WindowSource, ...]
    batches: grain.MapDataset
    task: str
    instruction: str
    num_episodes: int


def policy_config_for(episodes: list[Episode], requested: PolicyConfig, where: str) -> PolicyConfig:
    """The requested policy config with its state and action dimensions taken from the dataset (and a
    frame stride of 0 chosen from its episode lengths, `frame_stride_for`).

    The image size stays the policy's: the pipeline resizes the dataset's frames to it.
    """
    first = episodes[0]
    if requested.frame_stride == 0:
        stride = frame_stride_for([len(e.action) for e in episodes], requested.obs_horizon)
        requested = dataclasses.replace(requested, frame_stride=stride)
    if requested.encoder == "cached":  # an embedding cache: per-frame features instead of images
        missing = [cam for cam in requested.cameras if cam not in first.embeddings]
        if missing:
            raise UserError(
                f"{where}: no embeddings of camera {missing[0]!r} (it has {sorted(first.embeddings)})"
            )
        return dataclasses.replace(
            requested,
            feature_dim=int(first.embeddings[requested.cameras[0]].shape[1]),
            state_dim=int(first.state.shape[1]),
            action_dim=int(first.action.shape[1]),
        )
    missing = [cam for cam in requested.cameras if cam not in first.frames]
    if missing:
        raise UserError(f"{where}: dataset has no camera {missing[0]!r} (it has {sorted(first.frames)})")
    return dataclasses.replace(
        requested,
        state_dim=int(first.state.shape[1]),
        action_dim=int(first.action.shape[1]),
    )


def prepare_training_data(config: TrainConfig, episodes: list[Episode] | None = None) -> TrainingData:
    """Load, validate, normalize and window the datasets of `config` and mix them into one stream.

    `episodes`, when given, stand in for `config.dataset` (extra datasets are always read from disk).
    Each dataset's statistics are stored next to it on first use; with several datasets the policy
    normalizes with statistics over all of them, computed in memory.
    """
    groups: list[tuple[str, Path | None, list[Episode]]] = []
    mappings = config.dataset_mappings()
    for k, name in enumerate((config.dataset, *config.extra_datasets)):
        if k == 0 and episodes is not None:
            groups.append((name, None, episodes))
            continue
        dataset_dir = find_dataset_dir(name)
        groups.append((name, dataset_dir, load_episodes(dataset_dir, mappings[k])))
    for name, _, eps in groups:
        if not eps:
            raise UserError(f"{name}: no episodes")
    policy_cfg = policy_config_for(groups[0][2], config.policy, config.dataset)
    arrays = []
    for name, _, eps in groups:
        policy_config_for(eps, config.policy, name)  # every dataset has the cameras
        if policy_cfg.encoder == "cached":
            arrays.append([with_embeddings(episode_arrays(e, ()), e.embeddings) for e in eps])
        else:
            arrays.append([episode_arrays(e, policy_cfg.cameras) for e in eps])
        validate_episodes(arrays[-1], name)  # before statistics, so bad values get a precise error
    if policy_cfg.encoder != "cached":
        frames = sum(len(e) for _, _, eps in groups for e in eps) * len(policy_cfg.cameras)
        if frames * 3 * policy_cfg.image_size**2 <= config.data.frame_cache_gb * 2**30:
            arrays = [[decoded_frames(a, policy_cfg.image_size) for a in group] for group in arrays]
    per_dataset = [load_or_compute_stats(ds_dir, eps) for _, ds_dir, eps in groups]
    all_episodes = [e for _, _, eps in groups for e in eps]
    dataset_stats = per_dataset[0] if len(groups) == 1 else _union_stats(groups)
    stats = NormalizationStats.from_key_stats(dataset_stats.keys, config.data.normalization)
    vocab = dataset_stats.vocab(config.data.instruction_length)
    if policy_cfg.text != "none":  # the text encoder's embedding table covers the pipeline's vocabulary
        policy_cfg = dataclasses.replace(policy_cfg, vocab_size=vocab.size)
    spec = WindowSpec(policy_cfg.obs_horizon, policy_cfg.action_horizon, policy_cfg.frame_stride)
    sources = [
        WindowSource(
            group_arrays,
            spec,
            name=name,
            normalizers={"state": stats.state, "action": stats.action},
            episode_values={"instruction": np.stack([vocab.encode(e.instruction) for e in eps])},
            image_size=None if policy_cfg.encoder == "cached" else policy_cfg.image_size,
        )
        for (name, _, eps), group_arrays in zip(groups, arrays, strict=True)
    ]
    total = sum(len(s) for s in sources)
    if total < config.batch_size:
        raise UserError(f"{config.dataset}: {total} samples, fewer than one batch of {config.batch_size}")
    weights = list(config.dataset_weights) or [float(len(s)) for s in sources]
    return TrainingData(
        native_image_shapes={
            name: {cam: tuple(int(d) for d in e.frames[cam].shape[1:]) for cam in policy_cfg.cameras}
            for name, _, (e, *_) in groups
            if policy_cfg.encoder != "cached"
        },
        policy_config=policy_cfg,
        stats=stats,
        dataset_stats=dataset_stats,
        vocab=vocab,
        sources=tuple(sources),
        batches=window_dataset(sources, config.batch_size, config.seed, weights),
        task=all_episodes[0].task,
        instruction=all_episodes[0].instruction,
        num_episodes=len(all_episodes),
    )


def _union_stats(groups: list[tuple[str, Path | None, list[Episode]]]) -> DatasetStats:
    """Statistics over every dataset at once, with the action dims checked first for a clear error."""
    ref_name, _, ref = groups[0]
    for name, _, eps in groups[1:]:
        for key in ("action", "state"):
            want, got = getattr(ref[0], key).shape[1:], getattr(eps[0], key).shape[1:]
            if want != got:
                raise UserError(
                    f"{name}: episode 0: key '{key}' has shape {got} per step, dataset {ref_name} has {want}"
                )
    return DatasetStats.compute([e for _, _, eps in groups for e in eps])
