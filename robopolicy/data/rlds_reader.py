"""Reading RLDS datasets into `Episode`s: ours, and other projects' through a key mapping.

Neither format needs TensorFlow: array_record datasets are read by record index, tfrecord datasets
(most of Open X-Embodiment, OpenVLA's LIBERO) shard by shard with `tfrecord_file`, and both parse
each record with `rlds_records`, which leaves images encoded until a step's frame is asked for.
Reading validates as it goes (see `robopolicy.data.validate`): `RldsDataset.iter_episodes` yields
every problem, `load_episodes` refuses a dataset with any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from array_record.python.array_record_data_source import ArrayRecordDataSource

from robopolicy.data.episode import Episode
from robopolicy.data.key_mapping import KeyMapping, mapped_episode, resolve_mapping
from robopolicy.data.rlds_records import EpisodeRecord, LazyFrames, frame_shape, is_encoded, step_features
from robopolicy.data.tfrecord_file import read_records
from robopolicy.data.validate import (
    ArraySpec,
    DatasetError,
    Problem,
    check_arrays,
    check_consistent_shapes,
    check_rlds_flags,
    check_value_ranges,
    raise_if_problems,
)
from robopolicy.errors import UserError

_INFO_FILE = "dataset_info.json"
_FORMATS = ("array_record", "tfrecord")


LEROBOT_INFO_FILE = "meta/info.json"


def lerobot_root(path: Path) -> Path | None:
    """The LeRobotDataset folder that `path` is, or whose `meta/` or `meta/info.json` it is; None if
    it is none of these."""
    return next(
        (p for p in (path, path.parent, path.parent.parent) if (p / LEROBOT_INFO_FILE).is_file()), None
    )


def is_lerobot_dir(path: Path) -> bool:
    """Whether `path` is a LeRobotDataset folder (or its `meta/`, or its info file)."""
    return lerobot_root(path) is not None


def find_dataset_dir(path: str | Path) -> Path:
    """The TFDS version folder at or below `path` (the folder holding dataset_info.json).

    Accepts the version folder itself, a file in it, or any parent of it (e.g. the `dataset/` folder
    a collection wrote), as long as exactly one dataset lies below.
    """
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such dataset (path does not exist)")
    if is_lerobot_dir(root):
        raise UserError(
            f"{root}: a LeRobotDataset; training reads RLDS, so convert it once: "
            f"robopolicy data convert {root} OUT_DIR [--image-size N]"
        )
    if (root / _INFO_FILE).is_file():
        return root
    if root.is_file() and (root.parent / _INFO_FILE).is_file():  # a file of the dataset, e.g. its info
        return root.parent
    found = sorted(p.parent for p in root.rglob(_INFO_FILE)) if root.is_dir() else []
    if not found:
        raise UserError(f"{root}: not an RLDS dataset ({_INFO_FILE} not found below it)")
    if len(found) > 1:
        listing = ", ".join(str(p) for p in found)
        raise UserError(f"{root}: holds {len(found)} datasets, pass one of: {listing}")
    return found[0]


@dataclass(frozen=True)
class FeatureInfo:
    """One leaf of a dataset's feature tree: per-element shape, dtype and feature kind (Tensor, Image…)."""

    shape: tuple[int | None, ...]
    dtype: str
    kind: str


def flatten_features(feature: Any, prefix: str = "") -> dict[str, FeatureInfo]:
    """`steps/observation/image` → FeatureInfo for every leaf; `steps` is the RLDS step dataset."""
    if isinstance(feature, tfds.features.Dataset):
        return flatten_features(feature.feature, prefix)
    if isinstance(feature, tfds.features.FeaturesDict):
        out: dict[str, FeatureInfo] = {}
        for key in feature.keys():  # noqa: SIM118 - FeaturesDict is not a dict
            out.update(flatten_features(feature[key], f"{prefix}{key}/"))
        return out
    dtype = getattr(feature, "np_dtype", None) or feature.dtype
    name = "string" if isinstance(feature, tfds.features.Text) else str(np.dtype(dtype))
    return {prefix.rstrip("/"): FeatureInfo(tuple(feature.shape), name, type(feature).__name__)}


class RldsDataset:
    """An opened RLDS dataset: its folder, features, file format and key mapping."""

    def __init__(self, path: str | Path, mapping: str = "auto") -> None:
        self.dir = find_dataset_dir(path)
        try:
            self.builder = tfds.builder_from_directory(str(self.dir))
        except Exception as e:  # TFDS raises many types for a damaged dataset_info.json
            raise UserError(f"{self.dir}: not a readable TFDS dataset ({type(e).__name__}: {e})") from e
        if "train" not in self.builder.info.splits:
            raise UserError(f"{self.dir}: dataset has no 'train' split")
        self.features = flatten_features(self.builder.info.features)
        if not any(key.startswith("steps/") for key in self.features):
            raise UserError(f"{self.dir}: not an RLDS dataset (no 'steps' feature)")
        self.steps = step_features(self.builder.info.features)
        self.step_keys = set(self.steps)
        self.name = self.builder.info.name
        self.mapping: KeyMapping = resolve_mapping(mapping, self.step_keys, self.name)
        file_format = self.builder.info.file_format
        self.file_format = file_format.value if file_format is not None else "tfrecord"
        self.num_episodes = self.builder.info.splits["train"].num_examples
        self._source: Any = None

    def __str__(self) -> str:
        return str(self.dir)

    @property
    def random_access(self) -> bool:
        """Whether records can be read by index (array_record), so frames need not stay in memory."""
        return self.file_format == "array_record"

    def _shard_paths(self) -> list[str]:
        return [str(p) for p in self.builder.info.splits["train"].filepaths]

    def raw_record(self, index: int) -> bytes:
        """The serialized record at storage position `index` (array_record datasets only)."""
        if self._source is None:
            self._source = ArrayRecordDataSource(self._shard_paths())
        return self._source[index]

    def _raw_records(self) -> Iterator[tuple[int, bytes | Exception]]:
        if self.file_format not in _FORMATS:
            raise UserError(
                f"{self.dir}: stored as {self.file_format}; robopolicy reads {' and '.join(_FORMATS)}"
            )
        if self.random_access:
            split = self.builder.info.splits["train"]
            ends = np.cumsum(split.shard_lengths)
            for index in range(self.num_episodes):
                try:
                    yield index, self.raw_record(index)
                except Exception as e:  # a damaged record is a problem to report, not a crash
                    shard = split.filepaths[int(np.searchsorted(ends, index, side="right"))]
                    yield index, DatasetError(f"{shard}: {type(e).__name__}: {e}")
            return
        # A damaged tfrecord shard yields one error, at its first unreadable record, naming the file;
        # the records after it in that shard cannot be framed, so they are skipped.
        split = self.builder.info.splits["train"]
        start = 0
        for path, length in zip(split.filepaths, split.shard_lengths, strict=True):
            read = 0
            try:
                for data in read_records(path):
                    yield start + read, data
                    read += 1
                if read != length:
                    raise DatasetError(f"{path}: holds {read} records, {_INFO_FILE} says {length}")
            except (DatasetError, OSError) as e:
                yield start + read, e
            start += length

    def records(self) -> Iterator[tuple[int, EpisodeRecord | Exception]]:
        """(record index, parsed record) in storage order; a record that fails to parse yields its error."""
        for index, raw in self._raw_records():
            if isinstance(raw, Exception):
                yield index, raw
                continue
            try:
                yield index, EpisodeRecord(raw, self.steps)
            except Exception as e:  # a damaged record is reported, not raised
                yield index, e

    def frames(self, record: EpisodeRecord, index: int, key: str) -> LazyFrames:
        """The frames of camera step key `key` in the record at `index`, decoded on demand.

        Over array_record they re-read the record when indexed and hold no bytes; otherwise they keep
        the record's encoded strings (compressed) for the episode's lifetime.
        """
        feature = self.steps[key]
        encoded = record.encoded(key)
        shape = frame_shape(feature, encoded[0]) if encoded else (0, 0, 3)
        if self.random_access:

            def fetch() -> list[bytes]:
                return EpisodeRecord(self.raw_record(index), self.steps).encoded(key)

        else:

            def fetch() -> list[bytes]:
                return encoded

        return LazyFrames(fetch, feature.decode_example_np, record.length, shape)

    def iter_episodes(self) -> Iterator[tuple[int, Episode | None, list[Problem]]]:
        """(record index, episode or None, problems) for every record, in storage order."""
        for index, record in self.records():
            if isinstance(record, Exception):
                message = f"is unreadable ({type(record).__name__}: {record})"
                yield index, None, [Problem(str(self), index, "steps", message)]
                continue
            episode, problems = read_episode(record, index, self)
            yield index, episode, problems


def read_episode(
    record: EpisodeRecord, index: int, dataset: RldsDataset
) -> tuple[Episode | None, list[Problem]]:
    """One parsed RLDS record → (Episode, []) or (None, its problems). Frames stay encoded."""
    mapping = dataset.mapping
    meta_id = record.record_value(mapping.episode_id) if mapping.episode_id else None
    episode_id = int(meta_id) if meta_id is not None else index

    def problem(key: str, message: str) -> Problem:
        return Problem(str(dataset), episode_id, key, message, record=index)

    if record.length == 0:
        return None, [problem(mapping.action, "has 0 steps: empty episode")]
    specs = mapping.step_specs()
    if mapping.reward and record.has_step_key(mapping.reward):  # optional, but checked when present
        specs[mapping.reward] = ArraySpec((), "floating")
    if mapping.object_state and record.has_step_key(mapping.object_state):
        specs[mapping.object_state] = ArraySpec((None,), "floating")
    arrays: dict[str, Any] = {}
    problems: list[Problem] = []
    for key in specs:
        if key in mapping.cameras and record.has_step_key(key) and is_encoded(dataset.steps[key]):
            arrays[key] = dataset.frames(record, index, key)
            continue
        value = record.step_array(key)
        if isinstance(value, str):
            problems.append(problem(key, value))
        elif value is not None:
            arrays[key] = value
    reported = {p.key for p in problems}
    unreported = {k: spec for k, spec in specs.items() if k not in reported}
    checked = check_arrays(arrays, unreported, str(dataset), episode_id, mapping.action)
    flags = [_flags(record, key) for key in (mapping.is_first, mapping.is_last)]
    flag_keys = (mapping.is_first or "is_first", mapping.is_last or "is_last")
    checked += check_rlds_flags(*flags, str(dataset), episode_id, flag_keys)
    problems += [dataclasses.replace(p, record=index) for p in checked]
    instruction = ""
    if mapping.instruction is not None:
        texts = record.step_array(mapping.instruction)
        if texts is None or isinstance(texts, str) or not len(texts):
            problems.append(problem(mapping.instruction, "is missing"))
        else:
            instruction = str(texts[0])
    if problems:
        return None, problems

    def optional(key: str | None, default: np.ndarray) -> np.ndarray:
        value = record.step_array(key) if key else None
        return default if value is None or isinstance(value, str) else value

    n = record.length
    reward = optional(mapping.reward, np.zeros(n, np.float32))
    terminal = optional(mapping.is_terminal, np.ones(n, bool))
    episode = mapped_episode(
        mapping,
        arrays,
        episode_id=episode_id,
        instruction=instruction,
        meta=record.record_value,
        reward=reward,
        terminal=terminal,
    )
    return episode, []


def _flags(record: EpisodeRecord, key: str | None) -> np.ndarray | None:
    """A per-step boolean flag [T], or None where the dataset has no such key (or a malformed one)."""
    value = record.step_array(key) if key else None
    return None if value is None or isinstance(value, str) else value.reshape(record.length).astype(bool)


def iter_episodes(dataset: RldsDataset) -> Iterator[tuple[int, Episode | None, list[Problem]]]:
    """(record index, episode or None, problems) for every record, in storage order."""
    return dataset.iter_episodes()


def load_episodes(path: str | Path, mapping: str = "auto") -> list[Episode]:
    """Read and validate every episode of the dataset at `path`, ordered by episode id.

    `mapping` is a key-mapping preset name or TOML file (see `robopolicy.data.key_mapping`). Raises
    `DatasetError` naming the first problem if any episode is invalid, episodes differ in per-step
    shapes, or values lie far outside the dataset's robust range or the mapping's declared bounds.
    TFDS shuffles records by key when writing, so storage order is not collection order. Frames stay
    encoded (`rlds_records.LazyFrames`); over array_record they are not even held in memory.
    """
    dataset = RldsDataset(path, mapping)
    read: list[tuple[int, Episode]] = []
    for index, episode, problems in dataset.iter_episodes():
        raise_if_problems(problems)
        if episode is not None:
            read.append((index, episode))
    if not read:
        raise DatasetError(f"{dataset}: dataset has no episodes")
    read.sort(key=lambda item: item[1].episode_id)
    episodes = [episode for _, episode in read]
    raise_if_problems(check_consistent_shapes(episodes, str(dataset)))
    values = [dataset.mapping.episode_values(episode, index) for index, episode in read]
    raise_if_problems(check_value_ranges(values, str(dataset), dataset.mapping.declared_bounds()))
    return episodes
