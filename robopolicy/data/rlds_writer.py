"""Writing demonstrations as an RLDS dataset (tensorflow-datasets' layout, array_record, no TensorFlow).

Collection first writes each finished episode to `<out>/raw/episode_NNNNN.npz`, so an interrupted
collection keeps what it has; `build_rlds_dataset` then turns the folder, or any iterable of
episodes, into a dataset with the TFDS builder in `datasets/robopolicy_sim/` and removes the staging
folder. The records are written by `write_split`, not by TFDS's own writer: TFDS buffers a split in
memory and, past 1 GB, spills it through TensorFlow's file API, which needs TensorFlow. Here each
episode is serialized with the builder's features and appended to array_record shards of about
`SHARD_BYTES` as it comes, in the order given, so memory holds one episode whatever the dataset's size.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging
from array_record.python import array_record_module

from robopolicy.data.episode import Episode
from robopolicy.errors import UserError
from robopolicy.paths import datasets_dir

BUILDER_NAME = "robopolicy_sim"
OBJECT_STATE = "object_state"  # staged and `observation/` key of the objects' poses
ImageEncoding = Literal["zlib", "png", "jpeg"]


def write_raw_episode(
    raw_dir: Path,
    episode: Episode,
    per_step: Mapping[str, np.ndarray] | None = None,
    compressed: bool = True,
) -> Path:
    """Stage one episode as an npz; written to a temp name first so a crash leaves no half file.

    `per_step` holds the episode's observation arrays to store next to state, action and reward
    (default: its camera frames, under the camera names); `compressed=False` suits float arrays that
    barely compress, such as embeddings. The episode's `object_state`, if any, is staged too.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "task": episode.task,
        "instruction": episode.instruction,
        "episode_id": episode.episode_id,
        "seed": episode.seed,
        "init_state_id": episode.init_state_id,
        "success": episode.success,
    }
    path = raw_dir / f"episode_{episode.episode_id:05d}.npz"
    tmp = path.with_suffix(".tmp.npz")
    save = np.savez_compressed if compressed else np.savez
    save(
        tmp,
        meta=np.asarray(json.dumps(meta)),
        state=episode.state.astype(np.float32),
        action=episode.action.astype(np.float32),
        reward=episode.reward.astype(np.float32),
        **({} if episode.object_state is None else {OBJECT_STATE: episode.object_state.astype(np.float32)}),
        **dict(episode.frames if per_step is None else per_step),
    )
    tmp.replace(path)
    return path


def load_builder_module(name: str = BUILDER_NAME) -> ModuleType:
    """Import `datasets/<name>/<name>_dataset_builder.py` once (TFDS registers builders by name)."""
    module_name = f"{name}_dataset_builder"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = datasets_dir() / name / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the dataset builder at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def build_rlds_dataset(
    source: Path | Iterable[Episode],
    out_dir: Path,
    *,
    config_name: str,
    cameras: tuple[str, ...],
    image_shape: tuple[int, int],
    state_dim: int,
    action_dim: int,
    object_state_dim: int = 0,
    image_encoding: ImageEncoding = "zlib",
    keep_raw: bool = False,
) -> Path:
    """Write an array_record RLDS dataset; returns the dataset's version folder.

    `source` is a folder of staged `.npz` episodes (removed afterwards unless `keep_raw`) or any
    iterable of episodes, consumed one at a time (`write_split`), so memory stays bounded.
    `image_shape` is (height, width) of every camera's frames. `object_state_dim` > 0 adds
    `observation/object_state` float32 [object_state_dim]: each episode's object poses, zero-padded
    to that width (tasks with fewer objects than the widest).
    """
    module = load_builder_module()
    # TFDS narrates every build (custom-config warnings, nested progress bars); our callers have their own bar.
    tfds.disable_progress_bar()
    absl_logging.set_verbosity(absl_logging.ERROR)
    staged = isinstance(source, Path)
    config = module.SimDatasetConfig(
        name=config_name,
        raw_dir=str(source) if staged else "",
        cameras=tuple(cameras),
        image_size=image_shape[0],
        image_height=image_shape[0],
        image_width=image_shape[1],
        image_encoding=image_encoding,
        state_dim=state_dim,
        action_dim=action_dim,
        object_state_dim=object_state_dim,
    )
    builder = module.RobopolicySim(config=config, data_dir=str(out_dir), file_format="array_record")
    episodes = module.staged_episodes(source) if staged else source
    dataset_dir = write_split(builder, builder.examples(episodes))
    if staged and not keep_raw:
        shutil.rmtree(source)
    return dataset_dir


SHARD_BYTES = 1 << 30  # serialized bytes per array_record shard, about TFDS's own default


def write_split(
    builder: tfds.core.DatasetBuilder,
    examples: Iterable[tuple[str, dict[str, Any]]],
    shard_bytes: int | None = None,
) -> Path:
    """Serialize (key, example) pairs with `builder`'s features into the "train" split of its data
    folder (array_record shards, then dataset_info.json and features.json); returns that folder.

    Shards get their final `-NNNNN-of-NNNNN` names once their number is known; until the metadata is
    written the folder holds no dataset_info.json, so an interrupted write never looks complete.
    """
    shard_bytes = shard_bytes or SHARD_BYTES
    data_dir = Path(builder.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UserError(f"{data_dir}: already holds a dataset")
    data_dir.mkdir(parents=True, exist_ok=True)
    features = builder.info.features
    partial: list[Path] = []
    lengths: list[int] = []
    sizes: list[int] = []
    writer = None
    try:
        for _, example in examples:
            record = features.serialize_example(example)
            if writer is None or sizes[-1] >= shard_bytes:
                if writer is not None:
                    writer.close()
                partial.append(data_dir / f".shard-{len(partial):05d}.partial")
                writer = array_record_module.ArrayRecordWriter(str(partial[-1]), "group_size:1")
                lengths.append(0)
                sizes.append(0)
            writer.write(record)
            lengths[-1] += 1
            sizes[-1] += len(record)
    finally:
        if writer is not None:
            writer.close()
    if not lengths:
        raise UserError(f"{data_dir}: no episodes to write")
    template = tfds.core.ShardedFileTemplate(
        data_dir=data_dir, dataset_name=builder.name, split="train", filetype_suffix="array_record"
    )
    for k, path in enumerate(partial):
        path.rename(template.sharded_filepath(shard_index=k, num_shards=len(partial)))
    split = tfds.core.SplitInfo(
        name="train", shard_lengths=lengths, num_bytes=sum(sizes), filename_template=template
    )
    builder.info.set_splits(tfds.core.SplitDict([split]))
    builder.info.write_to_directory(data_dir)
    return data_dir
