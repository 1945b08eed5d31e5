"""TFDS builder for robopolicy's simulated demonstrations, in the RLDS layout.

It converts the per-episode `.npz` files written by the collector (one folder per dataset) into an
array_record TFDS dataset. Images are stored as zlib-compressed uint8 tensors rather than
`tfds.features.Image`, because PNG encoding needs TensorFlow and this path must not.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

VERSION = "1.0.0"
Example = tuple[str, dict[str, Any]]


@dataclasses.dataclass(eq=False)
class SimDatasetConfig(tfds.core.BuilderConfig):
    """Which raw episodes to convert and the shapes they carry."""

    raw_dir: str = ""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    state_dim: int = 9
    action_dim: int = 7


class RobopolicySim(tfds.core.GeneratorBasedBuilder):
    """Scripted-expert demonstrations from robopolicy's MuJoCo tasks (RLDS)."""

    VERSION = tfds.core.Version(VERSION)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: SimDatasetConfig = self.builder_config
        size = cfg.image_size
        images = {
            cam: tfds.features.Tensor(
                shape=(size, size, 3), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB
            )
            for cam in cfg.cameras
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "steps": tfds.features.Dataset(
                        {
                            "observation": tfds.features.FeaturesDict(
                                {
                                    **images,
                                    "state": tfds.features.Tensor(shape=(cfg.state_dim,), dtype=np.float32),
                                }
                            ),
                            "action": tfds.features.Tensor(shape=(cfg.action_dim,), dtype=np.float32),
                            "reward": tfds.features.Scalar(dtype=np.float32),
                            "discount": tfds.features.Scalar(dtype=np.float32),
                            "is_first": tfds.features.Scalar(dtype=np.bool_),
                            "is_last": tfds.features.Scalar(dtype=np.bool_),
                            "is_terminal": tfds.features.Scalar(dtype=np.bool_),
                            "language_instruction": tfds.features.Text(),
                        }
                    ),
                    "episode_metadata": tfds.features.FeaturesDict(
                        {
                            "task": tfds.features.Text(),
                            "episode_id": tfds.features.Scalar(dtype=np.int64),
                            "seed": tfds.features.Scalar(dtype=np.int64),
                            "init_state_id": tfds.features.Scalar(dtype=np.int64),
                        }
                    ),
                }
            ),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator[Example]]:
        return {"train": self._generate_examples(Path(self.builder_config.raw_dir))}

    def _generate_examples(self, raw_dir: Path) -> Iterator[Example]:
        cameras = self.builder_config.cameras
        for path in sorted(raw_dir.glob("episode_*.npz")):
            with np.load(path) as f:
                meta = json.loads(str(f["meta"]))
                actions = f["action"]
                rewards = f["reward"]
                states = f["state"]
                frames = {cam: f[cam] for cam in cameras}
            num_steps = len(actions)
            steps = [
                {
                    "observation": {**{cam: frames[cam][t] for cam in cameras}, "state": states[t]},
                    "action": actions[t],
                    "reward": rewards[t],
                    "discount": np.float32(1.0),
                    "is_first": t == 0,
                    "is_last": t == num_steps - 1,
                    "is_terminal": bool(t == num_steps - 1 and meta["success"]),
                    "language_instruction": meta["instruction"],
                }
                for t in range(num_steps)
            ]
            episode_id = int(meta["episode_id"])
            yield (
                f"episode_{episode_id:05d}",
                {
                    "steps": steps,
                    "episode_metadata": {
                        "task": meta["task"],
                        "episode_id": episode_id,
                        "seed": int(meta["seed"]),
                        "init_state_id": int(meta["init_state_id"]),
                    },
                },
            )
