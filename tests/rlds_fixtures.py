"""Writing small RLDS datasets the way other projects do: any step features, any episodes, array_record.

`write_rlds` builds a TFDS dataset (no TensorFlow) from plain step dicts; images for
`tfds.features.Image` features are PNG-encoded with Pillow first, because TFDS encodes numpy images
with TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclasses.dataclass(eq=False)
class _Config(tfds.core.BuilderConfig):
    step_features: dict = dataclasses.field(default_factory=dict)
    metadata_features: dict = dataclasses.field(default_factory=dict)
    episodes: list = dataclasses.field(default_factory=list)


def _encode(value: Any, feature: Any) -> Any:
    if isinstance(feature, dict):
        return {k: _encode(value[k], f) for k, f in feature.items() if k in value}
    if isinstance(feature, tfds.features.Image) and isinstance(value, np.ndarray):
        return png(value)
    return value


class ForeignRlds(tfds.core.GeneratorBasedBuilder):
    """A dataset of arbitrary step features, as a converter from another project would write."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        features = {"steps": tfds.features.Dataset(cfg.step_features)}
        if cfg.metadata_features:
            features["episode_metadata"] = tfds.features.FeaturesDict(cfg.metadata_features)
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager: Any) -> dict:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Any:
        cfg = self.builder_config
        for i, episode in enumerate(cfg.episodes):
            example = {"steps": [_encode(step, cfg.step_features) for step in episode["steps"]]}
            if cfg.metadata_features:
                example["episode_metadata"] = episode["metadata"]
            yield f"episode_{i:05d}", example


def write_rlds(
    out: Path,
    step_features: dict,
    episodes: list[dict],
    metadata_features: dict | None = None,
    name: str = "default",
) -> Path:
    """Write `episodes` ({"steps": [step dict, ...], "metadata": {...}}) and return the version folder."""
    config = _Config(
        name=name,
        step_features=step_features,
        metadata_features=metadata_features or {},
        episodes=episodes,
    )
    builder = ForeignRlds(config=config, data_dir=str(out), file_format="array_record")
    with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare()
    return Path(builder.data_dir)


def libero_step_features(size: int = 256) -> dict:
    """The LIBERO RLDS schema of the OpenVLA/openpi conversions (published at 256×256 images)."""

    def image() -> tfds.features.Image:
        return tfds.features.Image(shape=(size, size, 3), dtype=np.uint8, encoding_format="png")

    return {
        "observation": {
            "image": image(),
            "wrist_image": image(),
            "state": tfds.features.Tensor(shape=(8,), dtype=np.float32),
            "joint_state": tfds.features.Tensor(shape=(7,), dtype=np.float32),
        },
        "action": tfds.features.Tensor(shape=(7,), dtype=np.float32),
        "discount": tfds.features.Scalar(dtype=np.float32),
        "reward": tfds.features.Scalar(dtype=np.float32),
        "is_first": tfds.features.Scalar(dtype=np.bool_),
        "is_last": tfds.features.Scalar(dtype=np.bool_),
        "is_terminal": tfds.features.Scalar(dtype=np.bool_),
        "language_instruction": tfds.features.Text(),
    }


def libero_episode(rng: np.random.Generator, num_steps: int, instruction: str, size: int = 256) -> dict:
    """One episode in the LIBERO schema: smooth random images (so PNG stays small), 8-d state, 7-d action."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)

    def image() -> np.ndarray:
        base = ramp[:, None, None] * rng.uniform(0, 1, 3) + ramp[None, :, None] * rng.uniform(0, 1, 3)
        return np.clip(base / 2, 0, 255).astype(np.uint8)

    steps = [
        {
            "observation": {
                "image": image(),
                "wrist_image": image(),
                "state": rng.normal(size=8).astype(np.float32),
                "joint_state": rng.normal(size=7).astype(np.float32),
            },
            "action": rng.uniform(-1, 1, size=7).astype(np.float32),
            "discount": np.float32(1.0),
            "reward": np.float32(t == num_steps - 1),
            "is_first": t == 0,
            "is_last": t == num_steps - 1,
            "is_terminal": t == num_steps - 1,
            "language_instruction": instruction,
        }
        for t in range(num_steps)
    ]
    return {"steps": steps}
