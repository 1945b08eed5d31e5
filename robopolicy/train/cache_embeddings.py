"""`robopolicy cache-embeddings`: stage 2 of multistage long-context training (Past-Token Prediction).

A stage-1 policy's camera encoders, with their EMA weights, or a DynaMo checkpoint's one encoder
shared by its cameras (#6), embed every frame of a dataset once; the embeddings are written as the
derived dataset of `robopolicy.data.embedding_cache`, on which stage 3 trains the long-context head.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from robopolicy.data.embedding_cache import build_embedding_dataset, default_out, stage_episode
from robopolicy.data.rlds_reader import RldsDataset, iter_episodes
from robopolicy.data.validate import DatasetError, raise_if_problems
from robopolicy.errors import UserError
from robopolicy.train.frame_encoder import FrameEncoder


@dataclass(frozen=True)
class CacheEmbeddingsConfig:
    """Write per-frame embeddings of a dataset with a trained policy's image encoder.

    Attributes:
        encoder: a training run folder (or its checkpoints folder, or one step folder); the latest
            checkpoint's EMA encoder weights are used. Or a DynaMo pretraining run: its encoder.
        dataset: the RLDS dataset to embed.
        out: folder for the derived dataset; default: the dataset path with `_embeddings` appended.
        mapping: key mapping of the source dataset (auto, robopolicy, libero or a .toml file).
        batch_size: frames per encoder call.
        keep_raw: keep the per-episode staging files after the dataset is built.
    """

    encoder: str = ""
    dataset: str = ""
    out: str = ""
    mapping: str = "auto"
    batch_size: int = 256
    keep_raw: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"CacheEmbeddingsConfig: batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class CacheResult:
    dataset_dir: Path
    episodes: int
    frames: int  # frames encoded, all cameras counted
    seconds: float  # encoding and staging, excluding the final dataset build


def cache_embeddings(config: CacheEmbeddingsConfig, progress: bool = True) -> CacheResult:
    """Embed every frame of `config.dataset` and write the derived dataset; see the module docstring.

    Staged episodes survive an interruption and are not encoded again by the next run.
    """
    if not config.encoder or not config.dataset:
        raise UserError("cache-embeddings: give both --encoder RUN and --dataset PATH")
    source = RldsDataset(config.dataset, config.mapping)
    out = Path(config.out) if config.out else default_out(config.dataset)
    if out.exists() and any(out.rglob("dataset_info.json")):
        raise UserError(f"{out}: already holds a dataset; pass another --out or remove it")
    encoder = FrameEncoder(config.encoder, config.batch_size)
    raw_dir = out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)

    frames_done, shapes = 0, None
    t0 = time.perf_counter()
    bar = tqdm(total=source.num_episodes, desc="cache-embeddings", unit="episode", disable=not progress)
    for _, episode, problems in iter_episodes(source):
        raise_if_problems(problems)
        assert episode is not None  # no problems means an episode
        shapes = shapes or (episode.state.shape[1], episode.action.shape[1])
        if (episode.state.shape[1], episode.action.shape[1]) != shapes:
            raise DatasetError(
                f"{source}: episode {episode.episode_id}: key 'state' or 'action' has a dimension that differs from the first episode's"
            )
        if not (raw_dir / f"episode_{episode.episode_id:05d}.npz").exists():
            encoder.check_frames(episode.frames, f"{source}: episode {episode.episode_id}")
            stage_episode(raw_dir, episode, encoder(episode.frames))
            frames_done += len(episode) * len(encoder.config.cameras)
        bar.update(1)
        bar.set_postfix(frames_per_s=f"{frames_done / max(time.perf_counter() - t0, 1e-9):.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    if shapes is None:
        raise DatasetError(f"{source}: dataset has no episodes")

    record = {
        "encoder_checkpoint": str(encoder.checkpoint_dir),
        "encoder_step": encoder.step,
        "policy_config": asdict(encoder.config),
        "source_dataset": str(source),
        "source_mapping": source.mapping.name,
        "cameras": list(encoder.config.cameras),
        "embedding_dim": encoder.config.feature_dim,
        "weights": encoder.weights,
    }
    dataset_dir = build_embedding_dataset(
        raw_dir,
        out,
        encoder.config.cameras,
        encoder.config.feature_dim,
        shapes,
        record,
        keep_raw=config.keep_raw,
    )
    return CacheResult(dataset_dir, source.num_episodes, frames_done, seconds)
