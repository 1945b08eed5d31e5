"""Reading RLDS datasets written by `robopolicy collect` back into `Episode`s, without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from robopolicy.data.episode import Episode
from robopolicy.errors import UserError

_INFO_FILE = "dataset_info.json"


def find_dataset_dir(path: str | Path) -> Path:
    """The TFDS version folder at or below `path` (the folder holding dataset_info.json).

    Accepts the version folder itself or any parent of it (e.g. the `dataset/` folder a collection
    wrote), as long as exactly one dataset lies below.
    """
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such dataset (path does not exist)")
    if (root / _INFO_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.rglob(_INFO_FILE))
    if not found:
        raise UserError(f"{root}: not an RLDS dataset ({_INFO_FILE} not found below it)")
    if len(found) > 1:
        listing = ", ".join(str(p) for p in found)
        raise UserError(f"{root}: holds {len(found)} datasets, pass one of: {listing}")
    return found[0]


def load_episodes(path: str | Path) -> list[Episode]:
    """Read every episode of the dataset at `path` into memory, ordered by episode id.

    TFDS shuffles records by key when writing, so storage order is not collection order.
    """
    ds_dir = find_dataset_dir(path)
    builder = tfds.builder_from_directory(str(ds_dir))
    try:
        source = builder.as_data_source()["train"]
    except KeyError as e:
        raise UserError(f"{ds_dir}: dataset has no 'train' split") from e
    if len(source) == 0:
        raise UserError(f"{ds_dir}: dataset has no episodes")
    obs_features = builder.info.features["steps"]["observation"]
    cameras = [k for k in obs_features.keys() if k != "state"]  # noqa: SIM118 - FeaturesDict is not a dict
    episodes = []
    for index in range(len(source)):
        record = source[index]
        steps = [record["steps"][t] for t in range(len(record["steps"]))]
        meta = record["episode_metadata"]
        episode = Episode(
            frames={cam: np.stack([s["observation"][cam] for s in steps]) for cam in cameras},
            state=np.stack([s["observation"]["state"] for s in steps]).astype(np.float32),
            action=np.stack([s["action"] for s in steps]).astype(np.float32),
            reward=np.asarray([s["reward"] for s in steps], np.float32),
            task=_text(meta["task"]),
            instruction=_text(steps[0]["language_instruction"]),
            episode_id=int(meta["episode_id"]),
            seed=int(meta["seed"]),
            init_state_id=int(meta["init_state_id"]),
            success=bool(steps[-1]["is_terminal"]),
        )
        try:
            episode.validate(str(ds_dir))
        except ValueError as e:
            raise UserError(str(e)) from e
        episodes.append(episode)
    return sorted(episodes, key=lambda e: e.episode_id)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
