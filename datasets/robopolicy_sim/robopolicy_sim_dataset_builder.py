"""TFDS builder for robopolicy's simulated demonstrations, in the RLDS layout.

It converts the per-episode `.npz` files written by the collector (one folder per dataset), or any
iterable of episodes (what `robopolicy data convert` streams; `examples`), into an array_record TFDS
dataset. Images are stored per the config's `image_encoding`: zlib-compressed
uint8 tensors (lossless; the collector's default, fast for rendered scenes), or `tfds.features.Image`
as PNG (lossless) or JPEG (what most real-robot RLDS sets use). PNG/JPEG bytes are encoded here with
Pillow, since TFDS's own image encoder needs TensorFlow and this path must not. With
`object_state_dim` > 0, each step also stores `observation/object_state`: the objects' poses,
zero-padded to that width.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

VERSION = "1.0.0"
Example = tuple[str, dict[str, Any]]


@dataclasses.dataclass(eq=False)
class SimDatasetConfig(tfds.core.BuilderConfig):
    """Which raw episodes to convert and the shapes they carry."""

    raw_dir: str = ""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    image_height: int = 0  # 0: image_size (square)
    image_width: int = 0  # 0: image_size (square)
    image_encoding: str = "zlib"  # zlib | png | jpeg
    state_dim: int = 9
    action_dim: int = 7
    object_state_dim: int = 0  # 0: no observation/object_state

    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_height or self.image_size, self.image_width or self.image_size, 3)


class RobopolicySim(tfds.core.GeneratorBasedBuilder):
    """Scripted-expert demonstrations from robopolicy's MuJoCo tasks (RLDS)."""

    VERSION = tfds.core.Version(VERSION)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg: SimDatasetConfig = self.builder_config
        images = {cam: _image_feature(cfg.image_shape(), cfg.image_encoding) for cam in cfg.cameras}
        if cfg.object_state_dim:
            images["object_state"] = tfds.features.Tensor(shape=(cfg.object_state_dim,), dtype=np.float32)
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
        return {"train": self._generate_examples(staged_episodes(Path(self.builder_config.raw_dir)))}

    def _generate_examples(self, episodes: Iterable[Any]) -> Iterator[Example]:
        return self.examples(episodes)

    def examples(self, episodes: Iterable[Any]) -> Iterator[Example]:
        """(key, example) of each episode, in order; robopolicy writes them with its own streaming
        writer (`robopolicy.data.rlds_writer.write_split`), `tfds build` through `_split_generators`."""
        cfg: SimDatasetConfig = self.builder_config
        encode = _ENCODERS[cfg.image_encoding]
        for episode in episodes:
            num_steps = len(episode.action)
            frames = {cam: episode.frames[cam] for cam in cfg.cameras}
            objects = _padded_object_state(episode, cfg.object_state_dim)
            steps = [
                {
                    "observation": {
                        **{cam: encode(frames[cam][t]) for cam in cfg.cameras},
                        "state": episode.state[t],
                        **({} if objects is None else {"object_state": objects[t]}),
                    },
                    "action": episode.action[t],
                    "reward": episode.reward[t],
                    "discount": np.float32(1.0),
                    "is_first": t == 0,
                    "is_last": t == num_steps - 1,
                    "is_terminal": bool(t == num_steps - 1 and episode.success),
                    "language_instruction": episode.instruction,
                }
                for t in range(num_steps)
            ]
            yield (
                f"episode_{episode.episode_id:05d}",
                {
                    "steps": steps,
                    "episode_metadata": {
                        "task": episode.task,
                        "episode_id": episode.episode_id,
                        "seed": episode.seed,
                        "init_state_id": episode.init_state_id,
                    },
                },
            )


@dataclasses.dataclass(frozen=True)
class StagedEpisode:
    """An episode read back from the collector's staging `.npz` (the fields the examples need)."""

    frames: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    task: str
    instruction: str
    episode_id: int
    seed: int
    init_state_id: int
    success: bool
    object_state: np.ndarray | None = None


def staged_episodes(raw_dir: Path) -> Iterator[StagedEpisode]:
    for path in sorted(raw_dir.glob("episode_*.npz")):
        with np.load(path) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {key: f[key] for key in f.files if key != "meta"}
        yield StagedEpisode(
            frames={
                k: v for k, v in arrays.items() if k not in ("state", "action", "reward", "object_state")
            },
            state=arrays["state"],
            action=arrays["action"],
            reward=arrays["reward"],
            task=meta["task"],
            instruction=meta["instruction"],
            episode_id=int(meta["episode_id"]),
            seed=int(meta["seed"]),
            init_state_id=int(meta["init_state_id"]),
            success=bool(meta["success"]),
            object_state=arrays.get("object_state"),
        )


def _padded_object_state(episode: Any, width: int) -> np.ndarray | None:
    """The episode's object poses [T, width], zero-padded; None when the dataset stores none."""
    if not width:
        return None
    poses = getattr(episode, "object_state", None)
    if poses is None:
        raise ValueError(f"episode {episode.episode_id}: no object_state, but the dataset stores one")
    if poses.shape[1] > width:
        raise ValueError(
            f"episode {episode.episode_id}: object_state has {poses.shape[1]} values, over {width}"
        )
    return np.pad(np.asarray(poses, np.float32), [(0, 0), (0, width - poses.shape[1])])


def _image_feature(shape: tuple[int, int, int], encoding: str) -> Any:
    if encoding == "zlib":
        return tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)
    return tfds.features.Image(shape=shape, encoding_format=encoding)


def _pillow_encoder(fmt: str, **options: Any) -> Any:
    def encode(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        PIL.Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format=fmt, **options)
        return buffer.getvalue()

    return encode


_ENCODERS = {
    "zlib": np.asarray,  # the Tensor feature compresses
    "png": _pillow_encoder("PNG", compress_level=1),
    "jpeg": _pillow_encoder("JPEG", quality=95),
}
