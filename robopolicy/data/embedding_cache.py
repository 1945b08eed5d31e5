"""The embedding cache of multistage long-context training (Past-Token Prediction): the derived dataset.

Stage 1 trains a short-context policy end to end (or pretrains a DynaMo encoder); stage 2
(`robopolicy cache-embeddings`, `robopolicy.train.cache_embeddings`) runs that encoder once over
every frame of a dataset, and this module stores the per-frame embeddings as a derived RLDS dataset
(`datasets/robopolicy_embeddings/`); stage 3 trains the long-context head on the embeddings with the
encoder frozen, reading them through `load_embedding_episodes`. The derived dataset records its
source in `embedding_source.json`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging
from jaxtyping import Float

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import find_dataset_dir, load_episodes
from robopolicy.data.rlds_writer import load_builder_module, write_raw_episode, write_split
from robopolicy.errors import UserError

BUILDER_NAME = "robopolicy_embeddings"
SOURCE_FILE = "embedding_source.json"

Embeddings = dict[str, Float[np.ndarray, "t d"]]


def default_out(dataset: str) -> Path:
    """Where the cache of `dataset` goes unless told otherwise: the dataset path + `_embeddings`."""
    return Path(f"{str(dataset).rstrip('/')}_embeddings")


def stage_episode(raw_dir: Path, episode: Episode, embeddings: Embeddings) -> None:
    """One staged episode: its metadata, state, action and reward, with embeddings instead of frames."""
    write_raw_episode(
        raw_dir, episode, {f"embedding_{cam}": arr for cam, arr in embeddings.items()}, compressed=False
    )


def build_embedding_dataset(
    raw_dir: Path,
    out: Path,
    cameras: tuple[str, ...],
    embedding_dim: int,
    state_action_dims: tuple[int, int],
    source: dict[str, Any],
    keep_raw: bool = False,
) -> Path:
    """Build the dataset in `out` from the staged episodes and record `source` next to it (the
    encoder checkpoint, its config, the source dataset); returns the dataset folder."""
    module = load_builder_module(BUILDER_NAME)
    tfds.disable_progress_bar()
    absl_logging.set_verbosity(absl_logging.ERROR)
    builder_config = module.EmbeddingDatasetConfig(
        name=f"dim{embedding_dim}",
        raw_dir=str(raw_dir),
        cameras=tuple(cameras),
        embedding_dim=embedding_dim,
        state_dim=state_action_dims[0],
        action_dim=state_action_dims[1],
    )
    builder = module.RobopolicyEmbeddings(
        config=builder_config, data_dir=str(out), file_format="array_record"
    )
    dataset_dir = write_split(builder, builder.examples(raw_dir))
    if not keep_raw:
        shutil.rmtree(raw_dir)
    (dataset_dir / SOURCE_FILE).write_text(json.dumps(source, indent=2))
    return dataset_dir


def load_embedding_episodes(path: str | Path) -> list[Episode]:
    """The episodes of an embedding cache: `embeddings[camera]` float32 [T, D], no frames."""
    return load_episodes(path, mapping="robopolicy_embeddings")


def read_embedding_source(path: str | Path) -> dict[str, Any]:
    """The record of which encoder checkpoint and source dataset produced the cache at `path`."""
    record = find_dataset_dir(path) / SOURCE_FILE
    if not record.is_file():
        raise UserError(f"{path}: not an embedding cache ({SOURCE_FILE} missing)")
    return json.loads(record.read_text())
