"""One RLDS episode record, parsed without decoding its images, and frames decoded on demand.

TFDS stores an RLDS episode as one `tf.train.Example`: every per-step feature becomes one flat list
over the steps (`steps/observation/state` a float list of T·S values, `steps/action` T·A values), and
every image one encoded string per step (a PNG/JPEG for `tfds.features.Image`, a zlib block for a
zlib-encoded `Tensor`). Parsing the protocol buffer is cheap; decoding the images is what costs
time and memory. So reading is split in two:

- `EpisodeRecord` holds a parsed record: low-dimensional arrays, texts and episode metadata come
  out as numpy arrays, images as their encoded per-step strings;
- `LazyFrames` stands for one camera of one episode, uint8 [T, H, W, 3], and decodes only the steps
  it is indexed with. Over an array_record dataset it keeps no bytes at all: it re-reads its record
  by index when asked, so a training pipeline over a dataset of any size holds only the low-dim
  arrays (a few bytes per step) in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from jaxtyping import UInt8
from tensorflow_datasets.proto import tf_example_pb2

STEPS_PREFIX = "steps/"


def step_features(features: tfds.features.FeaturesDict) -> dict[str, Any]:
    """Flat per-step feature connectors of an RLDS dataset: {"observation/image": Image(...), ...}."""
    steps = features["steps"]
    inner = steps.feature if isinstance(steps, tfds.features.Dataset) else steps
    return _flat(inner)


def _flat(feature: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(feature, tfds.features.FeaturesDict):
        out: dict[str, Any] = {}
        for key in feature.keys():  # noqa: SIM118 - FeaturesDict is not a dict
            out.update(_flat(feature[key], f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): feature}


def is_encoded(feature: Any) -> bool:
    """Whether a per-step feature is stored as one encoded string per step (images, zlib tensors)."""
    if isinstance(feature, tfds.features.Text):
        return False
    info = feature.get_serialized_info()
    return np.dtype(info.np_dtype) == np.object_ and tuple(feature.shape) != ()


class EpisodeRecord:
    """One parsed RLDS episode: per-step arrays by step key, texts, and episode-record values."""

    def __init__(self, raw: bytes, steps: Mapping[str, Any]) -> None:
        self._feature = tf_example_pb2.Example.FromString(raw).features.feature
        self._steps = steps
        self.length = self._length()

    def _length(self) -> int:
        for key, feature in self._steps.items():
            if is_encoded(feature) or isinstance(feature, tfds.features.Text) or feature.shape == ():
                values = self._values(STEPS_PREFIX + key)
                if values is not None:
                    return len(values)
        for key, feature in self._steps.items():
            values = self._values(STEPS_PREFIX + key)
            if values is None or any(d is None for d in feature.shape):
                continue
            size = int(np.prod(feature.shape)) if feature.shape else 1
            if size:
                return len(values) // size
        return 0

    def _values(self, flat_key: str) -> Sequence[Any] | None:
        if flat_key not in self._feature:
            return None
        proto = self._feature[flat_key]
        kind = proto.WhichOneof("kind")
        return getattr(proto, kind).value if kind else []

    def has_step_key(self, key: str) -> bool:
        return key in self._steps and (STEPS_PREFIX + key) in self._feature

    def step_array(self, key: str) -> np.ndarray | str | None:
        """Per-step values of a numeric step key as [T, *shape] in the feature's dtype; texts as a
        [T] object array of str. None if absent; a message if the stored size does not fit."""
        if key not in self._steps:
            return None
        feature = self._steps[key]
        shape = tuple(feature.shape)
        if any(d is None for d in shape) and not is_encoded(feature):
            return f"has a per-step shape with unknown sizes {shape}, which is not supported"
        values = self._values(STEPS_PREFIX + key)
        if values is None:
            return None
        if isinstance(feature, tfds.features.Text):
            return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], object)
        if is_encoded(feature):
            return f"is an encoded feature ({type(feature).__name__}), not an array"
        arr = np.asarray(values, dtype=np.dtype(feature.np_dtype))
        size = int(np.prod(shape)) if shape else 1
        if arr.size != self.length * size:
            return f"holds {arr.size} values, not {self.length} steps × {size}"
        return arr.reshape(self.length, *shape)

    def encoded(self, key: str) -> list[bytes]:
        """The encoded per-step strings of an image key, [T]."""
        return list(self._values(STEPS_PREFIX + key) or [])

    def record_value(self, key: str) -> Any:
        """A scalar of the episode record (e.g. `episode_metadata/task`); None if absent."""
        values = self._values(key)
        if not values:
            return None
        value = values[0]
        return value.decode() if isinstance(value, bytes) else value


class LazyFrames:
    """uint8 [T, H, W, 3] frames of one camera, decoded only at the steps they are indexed with.

    `fetch()` returns the episode's encoded per-step strings (re-reading the record when the
    dataset allows random access); `decode` turns one string into an [H, W, 3] array. Supports
    `len`, `.shape`, `.dtype`, `.ndim`, integer-array indexing, and `np.asarray` / `.astype` (which
    decode every step).
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self,
        fetch: Callable[[], Sequence[bytes]],
        decode: Callable[[bytes], np.ndarray],
        length: int,
        frame_shape: tuple[int, int, int],
    ) -> None:
        self._fetch, self._decode = fetch, decode
        self.shape = (length, *frame_shape)
        self.ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, steps: Any) -> UInt8[np.ndarray, "*n h w 3"]:
        index = np.arange(len(self))[steps]
        wanted, inverse = np.unique(index, return_inverse=True)  # each distinct step decoded once
        encoded = self._fetch()
        out = np.empty((len(wanted), *self.shape[1:]), np.uint8)
        for i, t in enumerate(wanted):
            out[i] = self._decode(encoded[int(t)])
        return out[inverse.reshape(np.shape(index))]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self[np.arange(len(self))]
        return frames if dtype is None else frames.astype(dtype)

    def astype(self, dtype: Any) -> np.ndarray:
        """All frames, decoded, as an array of `dtype`."""
        return np.asarray(self, dtype)

    def __repr__(self) -> str:
        return f"LazyFrames(shape={self.shape})"


def frame_shape(feature: Any, first: bytes) -> tuple[int, int, int]:
    """A camera's per-step shape: the feature's when fully known, else decoded from its first frame."""
    shape = tuple(feature.shape)
    if len(shape) == 3 and all(isinstance(d, int) for d in shape):
        return shape  # type: ignore[return-value]
    return tuple(np.asarray(feature.decode_example_np(first)).shape)  # type: ignore[return-value]
