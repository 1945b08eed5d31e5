"""`robopolicy data convert`: any readable dataset → robopolicy's array_record RLDS, in one pass.

Episodes stream from the source reader one at a time (frames decoded per episode, optionally
resized and subsampled) into the TFDS writer, so memory stays bounded whatever the dataset's size.
The output appears atomically: it is written under a hidden sibling folder and renamed into place
at the end, so an interrupted or failed conversion leaves no half dataset, and an existing folder is
never overwritten.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro
from tqdm.auto import tqdm

from robopolicy.data.dataset_sources import DatasetReader, open_dataset
from robopolicy.data.episode import Episode
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.key_mapping import check_mapping_spec
from robopolicy.data.rlds_writer import build_rlds_dataset
from robopolicy.data.validate import DatasetError
from robopolicy.errors import UserError


@dataclass(frozen=True)
class DataConvertConfig:
    """Convert a dataset into robopolicy's RLDS layout (array_record; no TensorFlow needed to read it).

    Sources: RLDS in array_record or tfrecord (Open X-Embodiment, OpenVLA's LIBERO), LeRobotDataset
    folders, or robopolicy's own datasets; read through `--mapping`. Cameras keep the mapping's names
    (e.g. agentview, wrist). The output folder must not exist; it appears only when the conversion
    has finished.

    Attributes:
        src: the dataset to read.
        dst: the folder to write (it must not exist yet).
        mapping: how the source's keys map to cameras, state, action and instruction.
        image_size: resize every frame to image_size × image_size (aspect kept, padded:
            robopolicy.data.image_resize); 0 keeps the stored size.
        image_encoding: how frames are stored: png (lossless), jpeg (quality 95, ~5-10× smaller) or
            zlib (lossless; compresses rendered scenes well, camera images poorly).
        every: keep every n-th episode (in storage order); 1 keeps all.
        max_episodes: stop after this many kept episodes (0: no limit).
        skip_bad: drop episodes with problems (each reported on one line) instead of stopping at the
            first one.
    """

    src: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SRC")] = ""
    dst: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DST")] = ""
    mapping: str = "auto"
    image_size: int = 0
    image_encoding: Literal["png", "jpeg", "zlib"] = "png"
    every: int = 1
    max_episodes: int = 0
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.image_size != 0 and not 8 <= self.image_size <= 2048:
            raise ValueError(
                f"DataConvertConfig: image_size must be 0 or in [8, 2048], got {self.image_size}"
            )
        if self.every < 1 or self.max_episodes < 0:
            raise ValueError("DataConvertConfig: every must be >= 1 and max_episodes >= 0")


@dataclass(frozen=True)
class ConvertResult:
    dataset_dir: Path
    episodes: int
    steps: int
    skipped: int
    image_shape: tuple[int, int, int]
    seconds: float


def convert(config: DataConvertConfig, progress: bool = True) -> ConvertResult:
    """Convert `config.src` into a new dataset at `config.dst`; see `DataConvertConfig`."""
    if not config.src or not config.dst:
        raise UserError(
            "data convert: give a source and a destination, e.g. `robopolicy data convert SRC DST`"
        )
    check_mapping_spec(config.mapping)
    dst = Path(config.dst)
    if dst.exists():
        raise UserError(f"{dst}: already exists; data convert writes a new folder and never overwrites one")
    source = open_dataset(config.src, config.mapping)
    t0 = time.perf_counter()
    staging = dst.parent / f".{dst.name}.partial"
    if staging.exists():  # a conversion that was killed; it holds nothing worth keeping
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    counts = {"episodes": 0, "steps": 0, "skipped": 0}
    episodes = _converted(source, config, counts, progress)
    try:
        first = next(episodes)
    except StopIteration:
        raise DatasetError(f"{source}: no episode to convert") from None
    cameras = tuple(first.frames)
    height, width = first.frames[cameras[0]].shape[1:3]
    try:
        dataset_dir = build_rlds_dataset(
            _chain(first, episodes),
            staging,
            config_name=_config_name(_source_label(source.dir), config.image_size or None),
            cameras=cameras,
            image_shape=(int(height), int(width)),
            state_dim=int(first.state.shape[1]),
            action_dim=int(first.action.shape[1]),
            image_encoding=config.image_encoding,
        )
        staging.rename(dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ConvertResult(
        dataset_dir=dst / dataset_dir.relative_to(staging),
        episodes=counts["episodes"],
        steps=counts["steps"],
        skipped=counts["skipped"],
        image_shape=(int(height), int(width), 3),
        seconds=time.perf_counter() - t0,
    )


def _converted(
    source: DatasetReader, config: DataConvertConfig, counts: dict[str, int], progress: bool
) -> Iterator[Episode]:
    """The source's episodes as they will be written: subsampled, frames decoded and resized, checked
    to share cameras and shapes with the first one."""
    total = -(-source.num_episodes // config.every)
    if config.max_episodes:
        total = min(total, config.max_episodes)
    bar = tqdm(total=total, desc=f"convert {Path(config.src).name}", unit="episode", disable=not progress)
    reference: dict[str, tuple[int, ...]] | None = None
    try:
        for position, (_, episode, problems) in enumerate(source.iter_episodes()):
            if position % config.every:
                continue
            if problems or episode is None:
                if not config.skip_bad:
                    raise DatasetError(f"{problems[0]} (pass --skip-bad to drop such episodes)")
                for p in problems:
                    tqdm.write(f"skipped: {p}")
                counts["skipped"] += 1
                continue
            out = _prepared(episode, config.image_size)
            shapes = {cam: frames.shape[1:] for cam, frames in out.frames.items()}
            shapes |= {"state": out.state.shape[1:], "action": out.action.shape[1:]}
            if reference is None:
                reference = shapes
            elif shapes != reference:
                key = next(k for k in reference if shapes.get(k) != reference[k])
                raise DatasetError(
                    f"{source}: episode {episode.episode_id}: key '{key}' has per-step shape "
                    f"{shapes.get(key)}, the first episode has {reference[key]}"
                    + ("" if config.image_size else " (pass --image-size to resize every frame to one size)")
                )
            counts["episodes"] += 1
            counts["steps"] += len(out)
            bar.update(1)
            bar.set_postfix(steps=counts["steps"], skipped=counts["skipped"])
            yield out
            if config.max_episodes and counts["episodes"] >= config.max_episodes:
                return
    finally:
        bar.close()


def _prepared(episode: Episode, image_size: int) -> Episode:
    """The episode with its frames decoded in one read and resized to `image_size` (0: as stored)."""
    frames = {}
    for cam, lazy in episode.frames.items():
        decoded = np.asarray(lazy)
        frames[cam] = resize_with_pad(decoded, image_size, image_size) if image_size else decoded
    return dataclasses.replace(episode, frames=frames)


def _chain(first: Episode, rest: Iterator[Episode]) -> Iterator[Episode]:
    yield first
    yield from rest


def _source_label(dataset_dir: Path) -> str:
    """A TFDS version folder (…/<config>/1.0.0) is named by its config; any other folder by itself."""
    return dataset_dir.parent.name if dataset_dir.name[:1].isdigit() else dataset_dir.name


def _config_name(name: str, image_size: int | None) -> str:
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "converted"
    return f"{safe}_{image_size}px" if image_size else safe


def describe(result: ConvertResult) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
