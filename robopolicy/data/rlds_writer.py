"""Writing demonstrations as an RLDS dataset (tensorflow-datasets, array_record, no TensorFlow).

Collection first writes each finished episode to `<out>/raw/episode_NNNNN.npz`, so an interrupted
collection keeps what it has; `build_rlds_dataset` then converts the folder with the TFDS builder in
`datasets/robopolicy_sim/` and removes the staging folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from robopolicy.data.episode import Episode
from robopolicy.paths import datasets_dir

BUILDER_NAME = "robopolicy_sim"
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
    barely compress, such as embeddings.
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
    image_encoding: ImageEncoding = "zlib",
    keep_raw: bool = False,
) -> Path:
    """Write an array_record RLDS dataset; returns the dataset's version folder.

    `source` is a folder of staged `.npz` episodes (removed afterwards unless `keep_raw`) or any
    iterable of episodes, consumed one at a time (the TFDS writer spills to disk beyond ~1 GB, so
    memory stays bounded). `image_shape` is (height, width) of every camera's frames.
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
    )
    builder = module.RobopolicySim(config=config, data_dir=str(out_dir), file_format="array_record")
    if not staged:
        builder.episode_source = source
    with contextlib.redirect_stdout(
        io.StringIO()
    ):  # TFDS prints "Downloading and preparing…" though nothing downloads
        builder.download_and_prepare()
    if staged and not keep_raw:
        shutil.rmtree(source)
    return Path(builder.data_dir)
