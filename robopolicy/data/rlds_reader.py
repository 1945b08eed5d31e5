"""Reading RLDS datasets into `Episode`s: ours, and other projects' through a key mapping.

array_record datasets are read without TensorFlow (`as_data_source`); legacy tfrecord datasets need
it, which the `[tf]` extra installs. Reading validates as it goes (see `robopolicy.data.validate`):
`iter_episodes` yields every problem, `load_episodes` refuses a dataset with any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from robopolicy.data.episode import Episode
from robopolicy.data.key_mapping import KeyMapping, mapped_episode, resolve_mapping
from robopolicy.data.validate import (
    ArraySpec,
    DatasetError,
    Problem,
    check_arrays,
    check_consistent_shapes,
    raise_if_problems,
)
from robopolicy.errors import UserError

_INFO_FILE = "dataset_info.json"
TF_EXTRA_HINT = "pip install 'robopolicy[tf]'"


def find_dataset_dir(path: str | Path) -> Path:
    """The TFDS version folder at or below `path` (the folder holding dataset_info.json).

    Accepts the version folder itself, a file in it, or any parent of it (e.g. the `dataset/` folder
    a collection wrote), as long as exactly one dataset lies below.
    """
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such dataset (path does not exist)")
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
        self.step_keys = {key.removeprefix("steps/") for key in self.features if key.startswith("steps/")}
        self.name = self.builder.info.name
        self.mapping: KeyMapping = resolve_mapping(mapping, self.step_keys, self.name)
        file_format = self.builder.info.file_format
        self.file_format = file_format.value if file_format is not None else "tfrecord"
        self.num_episodes = self.builder.info.splits["train"].num_examples

    def __str__(self) -> str:
        return str(self.dir)

    def records(self) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """(record index, decoded record) in storage order; a record that fails to decode yields its error."""
        if self.file_format == "array_record":
            source = self.builder.as_data_source()["train"]
            for index in range(len(source)):
                try:
                    record = source[index]
                    yield (
                        index,
                        {**record, "steps": [record["steps"][t] for t in range(len(record["steps"]))]},
                    )
                except Exception as e:  # a damaged record is a problem to report, not a crash
                    yield index, e
            return
        try:
            import tensorflow  # noqa: F401 - only to learn whether it is installed
        except ImportError as e:
            raise UserError(
                f"{self.dir}: stored as {self.file_format}, which needs TensorFlow to read; "
                f"install it with: {TF_EXTRA_HINT}"
            ) from e
        dataset = self.builder.as_dataset(split="train", shuffle_files=False)
        for index, record in enumerate(tfds.as_numpy(dataset)):
            yield index, {**record, "steps": list(record["steps"])}


def _lookup(tree: Any, key: str) -> Any:
    for part in key.split("/"):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else str(value)


def _stack(steps: list[dict[str, Any]], key: str) -> np.ndarray | str | None:
    """Per-step values of `key` stacked into [T, ...]; None if missing, a message if ragged."""
    values = [_lookup(step, key) for step in steps]
    if any(v is None for v in values):
        return None
    arrays = [np.asarray(v) for v in values]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        return f"has per-step shapes that differ within the episode: {sorted(shapes)}"
    return np.stack(arrays)


def read_episode(
    record: dict[str, Any], index: int, mapping: KeyMapping, dataset: str
) -> tuple[Episode | None, list[Problem]]:
    """One decoded RLDS record → (Episode, []) or (None, its problems)."""
    meta_id = _lookup(record, mapping.episode_id) if mapping.episode_id else None
    episode_id = int(meta_id) if meta_id is not None else index

    def problem(key: str, message: str) -> Problem:
        return Problem(dataset, episode_id, key, message, record=index)

    steps = record["steps"]
    if not steps:
        return None, [problem(mapping.action, "has 0 steps: empty episode")]
    specs = mapping.step_specs()
    if mapping.reward and _lookup(steps[0], mapping.reward) is not None:  # optional, but checked when present
        specs[mapping.reward] = ArraySpec((), "floating")
    stacked = {key: _stack(steps, key) for key in specs}
    problems = [problem(key, value) for key, value in stacked.items() if isinstance(value, str)]
    arrays = {k: v for k, v in stacked.items() if not isinstance(v, str)}
    checked = check_arrays(
        arrays, {k: s for k, s in specs.items() if k in arrays}, dataset, episode_id, mapping.action
    )
    problems += [dataclasses.replace(p, record=index) for p in checked]
    instruction = ""
    if mapping.instruction is not None:
        value = _lookup(steps[0], mapping.instruction)
        if value is None:
            problems.append(problem(mapping.instruction, "is missing"))
        else:
            instruction = _text(value)
    if problems:
        return None, problems

    def optional(key: str | None, default: np.ndarray) -> np.ndarray:
        value = _stack(steps, key) if key else None
        return default if value is None or isinstance(value, str) else value

    n = len(steps)
    reward = optional(mapping.reward, np.zeros(n, np.float32))
    terminal = optional(mapping.is_terminal, np.ones(n, bool))
    episode = mapped_episode(
        mapping,
        arrays,
        episode_id=episode_id,
        instruction=instruction,
        meta=lambda key: _lookup(record, key),
        reward=reward,
        terminal=terminal,
    )
    return episode, []


def iter_episodes(dataset: RldsDataset) -> Iterator[tuple[int, Episode | None, list[Problem]]]:
    """(record index, episode or None, problems) for every record, in storage order."""
    for index, record in dataset.records():
        if isinstance(record, Exception):
            message = f"is unreadable ({type(record).__name__}: {record})"
            yield index, None, [Problem(str(dataset), index, "steps", message)]
            continue
        episode, problems = read_episode(record, index, dataset.mapping, str(dataset))
        yield index, episode, problems


def load_episodes(path: str | Path, mapping: str = "auto") -> list[Episode]:
    """Read and validate every episode of the dataset at `path`, ordered by episode id.

    `mapping` is a key-mapping preset name or TOML file (see `robopolicy.data.key_mapping`). Raises
    `DatasetError` naming the first problem if any episode is invalid. TFDS shuffles records by key
    when writing, so storage order is not collection order.
    """
    dataset = RldsDataset(path, mapping)
    episodes: list[Episode] = []
    for _, episode, problems in iter_episodes(dataset):
        raise_if_problems(problems)
        if episode is not None:
            episodes.append(episode)
    if not episodes:
        raise DatasetError(f"{dataset}: dataset has no episodes")
    episodes.sort(key=lambda e: e.episode_id)
    raise_if_problems(check_consistent_shapes(episodes, str(dataset)))
    return episodes
