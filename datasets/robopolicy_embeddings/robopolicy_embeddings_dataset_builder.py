"""TFDS builder for per-frame embedding caches (PTP multistage training), in the RLDS layout.

`robopolicy cache-embeddings` stages one `.npz` per episode (embeddings per camera, state, action,
reward and metadata) and this builder turns the folder into an array_record dataset. The layout is
the source dataset's with each camera image replaced by its embedding, float32 [D].
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
class EmbeddingDatasetConfig(tfds.core.BuilderConfig):
    """Which staged episodes to convert and the shapes they carry."""

    raw_dir: str = ""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    embedding_dim: int = 64
    state_dim: int = 9
    action_dim: int = 7


class RobopolicyEmbeddings(tfds.core.GeneratorBasedBuilder):
    """Per-frame image embeddings of a robopolicy dataset, written by a trained policy's encoder (RLDS)."""

    VERSION = tfds.core.Version(VERSION)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: EmbeddingDatasetConfig = self.builder_config
        embeddings = {
            cam: tfds.features.Tensor(shape=(cfg.embedding_dim,), dtype=np.float32) for cam in cfg.cameras
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
                                    **embeddings,
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
        return self.examples(raw_dir)

    def examples(self, raw_dir: Path) -> Iterator[Example]:
        """(key, example) of each staged episode, in file order; robopolicy writes them with its own
        streaming writer (`robopolicy.data.rlds_writer.write_split`), `tfds build` through
        `_split_generators`."""
        cameras = self.builder_config.cameras
        for path in sorted(raw_dir.glob("episode_*.npz")):
            with np.load(path) as f:
                meta = json.loads(str(f["meta"]))
                actions, rewards, states = f["action"], f["reward"], f["state"]
                embeddings = {cam: f[f"embedding_{cam}"] for cam in cameras}
            num_steps = len(actions)
            steps = [
                {
                    "observation": {**{cam: embeddings[cam][t] for cam in cameras}, "state": states[t]},
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
