"""Opening a dataset folder of any supported format with the reader that fits it.

Every reader streams episodes one at a time (`iter_episodes`) with the problems of each, so
`data info`, `data check`, `data convert` and training read every format the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from robopolicy.data.episode import Episode
from robopolicy.data.key_mapping import KeyMapping
from robopolicy.data.lerobot_reader import LeRobotFolder
from robopolicy.data.rlds_reader import FeatureInfo, RldsDataset, is_lerobot_dir
from robopolicy.data.validate import Problem


class DatasetReader(Protocol):
    """What every dataset reader offers."""

    dir: Path
    name: str
    mapping: KeyMapping
    features: dict[str, FeatureInfo]
    file_format: str
    num_episodes: int

    def iter_episodes(self) -> Iterator[tuple[int, Episode | None, list[Problem]]]:
        """(storage index, episode or None, its problems), one episode decoded at a time."""
        ...


def open_dataset(path: str | Path, mapping: str = "auto") -> DatasetReader:
    """The reader of the dataset at `path`: a LeRobotDataset folder (one with `meta/info.json`), else
    an RLDS dataset (array_record or tfrecord)."""
    if is_lerobot_dir(Path(path)):
        return LeRobotFolder(path, mapping)
    return RldsDataset(path, mapping)
