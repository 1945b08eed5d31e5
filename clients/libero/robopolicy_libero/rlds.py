"""Demonstrations in LIBERO's RLDS layout, the one of the LIBERO datasets that OpenVLA and openpi
train on (e.g. `libero_spatial_no_noops`), which robopolicy's `libero` key mapping reads:

    steps/observation/image        uint8 [256, 256, 3] JPEG, agentview, upright (rotated by 180°)
    steps/observation/wrist_image  uint8 [256, 256, 3] JPEG, eye-in-hand, upright
    steps/observation/state        float32 [8]: eef position, eef axis-angle, gripper fingers
    steps/action                   float32 [7]: OSC Δposition, Δrotation (scaled to [-1, 1]), gripper
    steps/language_instruction, reward, discount, is_first, is_last, is_terminal
    episode_metadata/file_path     the episode's suite, task and initial state

Episodes are staged one .npz each under `<out>/raw/` as they finish (an interrupted collection keeps
them, and a resumed one skips them); `write_rlds` then writes the array_record dataset with TFDS's
features (without TensorFlow: JPEG bytes come from Pillow) and removes the staging folder.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

VERSION = "1.0.0"
SHARD_EPISODES = 200  # episodes per array_record shard (~ 0.3–0.5 GB at 256×256)


def stage_episode(raw_dir: Path, name: str, episode: dict[str, Any]) -> Path:
    """Write one episode (frames, states, actions, instruction, source) to `raw_dir/<name>.npz`."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"{name}.npz"
    tmp = raw_dir / f"{name}.tmp.npz"
    meta = {"instruction": episode["instruction"], "file_path": episode["file_path"]}
    np.savez_compressed(
        tmp,
        meta=np.asarray(json.dumps(meta)),
        image=episode["image"],
        wrist_image=episode["wrist_image"],
        state=np.asarray(episode["state"], np.float32),
        action=np.asarray(episode["action"], np.float32),
    )
    tmp.replace(path)
    return path


def _features(size: int) -> Any:
    import tensorflow_datasets as tfds

    image = tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg")
    scalar = {"dtype": np.float32}
    step = tfds.features.FeaturesDict(
        {
            "observation": tfds.features.FeaturesDict(
                {
                    "image": image,
                    "wrist_image": image,
                    "state": tfds.features.Tensor(shape=(8,), dtype=np.float32),
                }
            ),
            "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
            "discount": tfds.features.Scalar(**scalar),
            "reward": tfds.features.Scalar(**scalar),
            "is_first": tfds.features.Scalar(dtype=np.bool_),
            "is_last": tfds.features.Scalar(dtype=np.bool_),
            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
            "language_instruction": tfds.features.Text(),
        }
    )
    return tfds.features.FeaturesDict(
        {
            "steps": tfds.features.Dataset(step),
            "episode_metadata": tfds.features.FeaturesDict({"file_path": tfds.features.Text()}),
        }
    )


def _jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=95)
    return out.getvalue()


def _example(path: Path) -> dict[str, Any]:
    with np.load(path) as staged:
        meta = json.loads(str(staged["meta"]))
        n = len(staged["action"])
        steps = [
            {
                "observation": {
                    "image": _jpeg(staged["image"][t]),
                    "wrist_image": _jpeg(staged["wrist_image"][t]),
                    "state": staged["state"][t],
                },
                "action": staged["action"][t],
                "discount": 1.0,
                "reward": float(t == n - 1),
                "is_first": t == 0,
                "is_last": t == n - 1,
                "is_terminal": t == n - 1,
                "language_instruction": meta["instruction"],
            }
            for t in range(n)
        ]
    return {"steps": steps, "episode_metadata": {"file_path": meta["file_path"]}}


def _shards(paths: list[Path]) -> Iterator[list[Path]]:
    for start in range(0, len(paths), SHARD_EPISODES):
        yield paths[start : start + SHARD_EPISODES]


def write_rlds(out: Path, name: str, size: int) -> Path:
    """The staged episodes of `out/raw` as the dataset `out/<name>/1.0.0` (array_record); its folder."""
    import tensorflow_datasets as tfds
    from array_record.python import array_record_module

    raw = out / "raw"
    paths = sorted(raw.glob("*.npz"))
    if not paths:
        raise ValueError(f"{raw}: no staged episodes to write")
    data_dir = out / name / VERSION
    if data_dir.exists():
        shutil.rmtree(data_dir)  # an earlier, interrupted write: the staged episodes are the source
    data_dir.mkdir(parents=True)
    features = _features(size)
    template = tfds.core.ShardedFileTemplate(
        data_dir=data_dir, dataset_name=name, split="train", filetype_suffix="array_record"
    )
    groups = list(_shards(paths))
    lengths, total = [], 0
    for k, group in enumerate(groups):
        writer = array_record_module.ArrayRecordWriter(
            str(template.sharded_filepath(shard_index=k, num_shards=len(groups))), "group_size:1"
        )
        for path in group:
            record = features.serialize_example(_example(path))
            writer.write(record)
            total += len(record)
        writer.close()
        lengths.append(len(group))
    split = tfds.core.SplitInfo(
        name="train", shard_lengths=lengths, num_bytes=total, filename_template=template
    )
    tfds.folder_dataset.write_metadata(
        data_dir=data_dir,
        features=features,
        split_infos=[split],
        filename_template=template,
        check_data=False,
    )
    shutil.rmtree(raw)
    return data_dir
