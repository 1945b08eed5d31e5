"""The embedding cache of multistage long-context training (Past-Token Prediction).

Stage 1 trains a short-context policy end to end; stage 2 (this module) runs that policy's camera
encoders, with their EMA weights, once over every frame of a dataset and writes the per-frame
embeddings as a derived RLDS dataset (`datasets/robopolicy_embeddings/`); stage 3 trains the
long-context head on the embeddings with the encoder frozen, reading them through
`load_embedding_episodes`. The derived dataset records its source in `embedding_source.json`.
The encoder may also come from a DynaMo checkpoint (`robopolicy pretrain dynamo`, #6): its one
encoder, shared by its cameras, embeds every frame.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging
from flax import nnx
from jaxtyping import Float, UInt8
from tqdm.auto import tqdm

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import RldsDataset, find_dataset_dir, iter_episodes, load_episodes
from robopolicy.data.rlds_writer import load_builder_module, write_raw_episode
from robopolicy.data.validate import DatasetError, raise_if_problems
from robopolicy.errors import UserError
from robopolicy.models.policy import SHARED, Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.dynamo_checkpoint import KIND as DYNAMO_KIND
from robopolicy.train.dynamo_checkpoint import load_dynamo_encoder, policy_config_with_encoder

BUILDER_NAME = "robopolicy_embeddings"
SOURCE_FILE = "embedding_source.json"


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


Frames = dict[str, UInt8[np.ndarray, "t h w 3"]]
Embeddings = dict[str, Float[np.ndarray, "t d"]]


class FrameEncoder:
    """The per-camera image encoders of a `Policy` checkpoint (EMA weights), or the shared encoder of a
    DynaMo checkpoint, batched and jitted."""

    def __init__(self, path: str | Path, batch_size: int = 256) -> None:
        directory, step, meta = checkpoint.load_meta(path)
        self.checkpoint_dir, self.step, self.batch_size = directory, step, batch_size
        if meta.get("kind") == DYNAMO_KIND:
            self._init_dynamo(path)
            return
        self.weights = "ema"
        try:
            self.config = PolicyConfig.from_dict(meta["policy_config"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{directory / str(step)}: checkpoint has no valid policy config ({e})") from e
        abstract = nnx.eval_shape(lambda: Policy(self.config, rngs=nnx.Rngs(0)))
        self.params = checkpoint.restore_policy_params(directory, step, nnx.state(abstract, nnx.Param))
        self._graphdef = nnx.graphdef(abstract)

    def _init_dynamo(self, path: str | Path) -> None:
        """A policy whose shared encoder holds the DynaMo weights; only its encoder ever runs."""
        dynamo_config, encoder_params = load_dynamo_encoder(path)
        self.weights = "dynamo"
        self.config = policy_config_with_encoder(PolicyConfig(image_shift=0), dynamo_config)
        policy = Policy(self.config, rngs=nnx.Rngs(0))
        nnx.update(policy.encoders[SHARED], encoder_params)
        self._graphdef, self.params = nnx.graphdef(policy), nnx.state(policy, nnx.Param)

    def check_frames(self, frames: Frames, where: str) -> None:
        """One-line error if the episode lacks a camera of the encoder or has another image size."""
        for cam in self.config.cameras:
            if cam not in frames:
                raise UserError(
                    f"{where}: no camera {cam!r} for the encoder (the dataset has {sorted(frames)})"
                )
            size = self.config.image_size
            if frames[cam].shape[1:] != (size, size, 3):
                raise UserError(
                    f"{where}: camera {cam!r} frames are {frames[cam].shape[1:]}, the encoder expects ({size}, {size}, 3)"
                )

    def __call__(self, frames: Frames) -> Embeddings:
        """uint8 frames [T, H, W, 3] per camera → float32 embeddings [T, feature_dim] per camera.

        Chunks of `batch_size`; a short chunk is padded up to a power of two, so at most
        log2(batch_size) + 1 shapes are ever compiled.
        """
        cams = self.config.cameras
        n = len(frames[cams[0]])
        out: dict[str, list[np.ndarray]] = {cam: [] for cam in cams}
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            padded = min(self.batch_size, 1 << (stop - start - 1).bit_length())
            index = np.minimum(np.arange(start, start + padded), stop - 1)
            result = _encode(self._graphdef, self.params, {cam: frames[cam][index] for cam in cams})
            for cam in cams:
                out[cam].append(np.asarray(result[cam])[: stop - start])
        return {cam: np.concatenate(chunks).astype(np.float32) for cam, chunks in out.items()}


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef: nnx.GraphDef, params: nnx.State, images: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Jitted once per policy shape (the graphdef is static), shared by every `FrameEncoder`."""
    model = nnx.merge(graphdef, params)
    return model.embed_frames(images)


def default_out(dataset: str) -> Path:
    return Path(f"{str(dataset).rstrip('/')}_embeddings")


def _stage(raw_dir: Path, episode: Episode, embeddings: Embeddings) -> None:
    """One staged episode: its metadata, state, action and reward, with embeddings instead of frames."""
    write_raw_episode(
        raw_dir, episode, {f"embedding_{cam}": arr for cam, arr in embeddings.items()}, compressed=False
    )


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
            _stage(raw_dir, episode, encoder(episode.frames))
            frames_done += len(episode) * len(encoder.config.cameras)
        bar.update(1)
        bar.set_postfix(frames_per_s=f"{frames_done / max(time.perf_counter() - t0, 1e-9):.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    if shapes is None:
        raise DatasetError(f"{source}: dataset has no episodes")

    dataset_dir = _build(raw_dir, out, encoder, shapes, keep_raw=config.keep_raw)
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
    (dataset_dir / SOURCE_FILE).write_text(json.dumps(record, indent=2))
    return CacheResult(dataset_dir, source.num_episodes, frames_done, seconds)


def _build(raw_dir: Path, out: Path, encoder: FrameEncoder, shapes: tuple[int, int], keep_raw: bool) -> Path:
    module = load_builder_module(BUILDER_NAME)
    tfds.disable_progress_bar()
    absl_logging.set_verbosity(absl_logging.ERROR)
    builder_config = module.EmbeddingDatasetConfig(
        name=f"dim{encoder.config.feature_dim}",
        raw_dir=str(raw_dir),
        cameras=tuple(encoder.config.cameras),
        embedding_dim=encoder.config.feature_dim,
        state_dim=shapes[0],
        action_dim=shapes[1],
    )
    builder = module.RobopolicyEmbeddings(
        config=builder_config, data_dir=str(out), file_format="array_record"
    )
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS announces a download that does not happen
        builder.download_and_prepare()
    if not keep_raw:
        shutil.rmtree(raw_dir)
    return Path(builder.data_dir)


def load_embedding_episodes(path: str | Path) -> list[Episode]:
    """The episodes of an embedding cache: `embeddings[camera]` float32 [T, D], no frames."""
    return load_episodes(path, mapping="robopolicy_embeddings")


def read_embedding_source(path: str | Path) -> dict[str, Any]:
    """The record of which encoder checkpoint and source dataset produced the cache at `path`."""
    record = find_dataset_dir(path) / SOURCE_FILE
    if not record.is_file():
        raise UserError(f"{path}: not an embedding cache ({SOURCE_FILE} missing)")
    return json.loads(record.read_text())
