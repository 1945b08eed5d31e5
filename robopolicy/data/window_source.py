"""A random-access source of training windows over episodes given as dicts of per-step arrays.

The source knows nothing about cameras or embeddings: an episode is a mapping from a key to an array
whose first axis is the step, e.g.

    {"images/agentview": uint8 [T, H, W, 3], "state": float32 [T, S], "action": float32 [T, A]}

Every key but `action` is windowed like an observation (`To` frames), `action` like the action chunk
(`H` steps), with the alignment of `robopolicy.data.windows`. A "/" in a key nests the output, so
"images/agentview" comes out as batch["images"]["agentview"]. Per-frame cached embeddings plug in as
one more per-step key, "embeddings/<camera>" float32 [T, D], with or instead of the images.
Per-episode values (the encoded instruction) are broadcast to every window of their episode.

In-memory arrays are concatenated per key, so a batch is one vectorized gather per key. Frames that
are decoded on demand (`robopolicy.data.rlds_records.LazyFrames`, what reading an array_record
dataset gives) stay per episode: a batch decodes just the frames its windows observe, one record
read per episode in the batch, so host memory does not grow with the dataset. Images of any
stored size come out at the source's `image_size`, resized with
`robopolicy.data.image_resize.resize_with_pad` inside the data pipeline's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Int

from robopolicy.data.episode import Episode
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.normalization import Normalizer
from robopolicy.data.validate import ArraySpec, DatasetError, check_arrays, raise_if_problems
from robopolicy.data.windows import window_offsets
from robopolicy.errors import UserError

ACTION_KEY = "action"
IMAGE_PREFIX = "images/"
Batch = dict[str, object]  # nested: values are arrays [B, ...] or dicts of them


@dataclass(frozen=True)
class WindowSpec:
    """Shape of a window.

    Attributes:
        obs_horizon: `To`, observation frames per sample.
        action_horizon: `H`, actions per sample; index To−1 is the current action.
        frame_stride: steps between observed frames (1 = consecutive; long tasks use e.g. 20), the
            policy's `frame_stride`.
    """

    obs_horizon: int = 2
    action_horizon: int = 16
    frame_stride: int = 1

    def __post_init__(self) -> None:
        for name in ("obs_horizon", "action_horizon", "frame_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"WindowSpec: {name} must be a positive integer, got {value!r}")
        if self.action_horizon < self.obs_horizon:
            raise ValueError(
                f"WindowSpec: action_horizon ({self.action_horizon}) must cover the observed steps "
                f"(obs_horizon {self.obs_horizon}), since index To−1 is the current action"
            )


def episode_arrays(episode: Episode, cameras: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """An `Episode` as per-step arrays: images of `cameras` (all when None), state and action."""
    cams = list(episode.frames) if cameras is None else list(cameras)
    arrays: dict[str, np.ndarray] = {}
    for cam in cams:
        if cam not in episode.frames:
            raise UserError(
                f"episode {episode.episode_id}: key 'images/{cam}' missing (cameras: {sorted(episode.frames)})"
            )
        arrays[f"images/{cam}"] = episode.frames[cam]
    arrays["state"] = episode.state
    arrays[ACTION_KEY] = episode.action
    return arrays


def decoded_frames(arrays: Mapping[str, Any], image_size: int) -> dict[str, Any]:
    """One episode's per-step arrays with its "images/*" decoded into memory at `image_size`
    (resized as the source would resize them per batch); other keys as given."""
    return {
        key: resize_with_pad(np.asarray(value), image_size, image_size)
        if key.startswith(IMAGE_PREFIX)
        else value
        for key, value in arrays.items()
    }


def with_embeddings(
    arrays: Mapping[str, np.ndarray], embeddings: Mapping[str, np.ndarray], keep_images: bool = False
) -> dict[str, np.ndarray]:
    """Per-step arrays of one episode with cached per-frame embeddings {camera: float32 [T, D]} added
    as "embeddings/<camera>" and, unless `keep_images`, the images dropped (long-context training on
    a frozen encoder reads embeddings only)."""
    out = {k: v for k, v in arrays.items() if keep_images or not k.startswith("images/")}
    for cam, values in embeddings.items():
        out[f"embeddings/{cam}"] = np.asarray(values, np.float32)
    return out


def nest(flat: Mapping[str, np.ndarray]) -> Batch:
    """{"images/cam": x, "state": y} → {"images": {"cam": x}, "state": y}."""
    out: Batch = {}
    for key, value in flat.items():
        head, _, tail = key.partition("/")
        if tail:
            out.setdefault(head, {})[tail] = value  # type: ignore[union-attr]
        else:
            out[head] = value
    return out


class WindowSource:
    """Every step of every episode anchors one window; `len` is the total number of steps.

    Args:
        episodes: per-step arrays per episode (see the module docstring); all share keys, dtypes and
            per-step shapes, have at least 2 steps and finite floats.
        spec: window shape.
        name: the dataset's name or path, used in error messages.
        normalizers: per-key affine maps applied once here (e.g. state, action).
        episode_values: per-episode arrays [E, ...] (e.g. "instruction" int32 [E, L]).
        image_size: side of the square images that "images/*" keys come out at (None: as stored).
    """

    def __init__(
        self,
        episodes: Sequence[Mapping[str, np.ndarray]],
        spec: WindowSpec,
        name: str,
        normalizers: Mapping[str, Normalizer] | None = None,
        episode_values: Mapping[str, np.ndarray] | None = None,
        image_size: int | None = None,
    ) -> None:
        self.spec, self.name = spec, name
        self.image_size = image_size
        stored = validate_episodes(episodes, name)
        self.layout = {
            key: (dtype, _output_shape(key, shape, image_size)) for key, (dtype, shape) in stored.items()
        }
        normalizers = dict(normalizers or {})
        lengths = np.asarray([len(e[ACTION_KEY]) for e in episodes])
        self.num_episodes = len(episodes)
        self._arrays: dict[str, np.ndarray] = {}
        self._lazy: dict[str, list[Any]] = {}  # per-episode frames decoded on demand
        for key in self.layout:
            if not isinstance(episodes[0][key], np.ndarray):
                self._lazy[key] = [e[key] for e in episodes]
                continue
            joined = np.concatenate([e[key] for e in episodes])
            if key in normalizers:
                joined = normalizers[key].normalize(joined.astype(np.float32)).astype(np.float32)
            self._arrays[key] = joined
        self._episode_values = {}
        for key, values in (episode_values or {}).items():
            if len(values) != len(episodes):
                raise ValueError(f"{name}: '{key}' has {len(values)} rows for {len(episodes)} episodes")
            self._episode_values[key] = np.asarray(values)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # One row per sample: its episode, where that episode starts, its length, the anchor step.
        self._episode = np.repeat(np.arange(len(episodes)), lengths)
        self._episode_start = np.repeat(starts, lengths)
        self._episode_length = np.repeat(lengths, lengths)
        self._anchor = np.concatenate([np.arange(n) for n in lengths])
        self._obs_offsets, self._action_offsets = window_offsets(
            spec.obs_horizon, spec.action_horizon, spec.frame_stride
        )

    def __len__(self) -> int:
        return len(self._anchor)

    def __getitem__(self, index: int) -> Batch:
        """One window (arrays without the batch axis)."""
        batch = self.get_batch(np.asarray([index]))
        return _map_nested(batch, lambda x: x[0])

    def get_batch(self, indices: Int[np.ndarray, " b"]) -> Batch:
        """The windows of the given sample indices, gathered without a Python loop over samples.

        Observation keys come out [B, To, ...], `action` [B, H, A], `obs_valid` bool [B, To],
        `action_valid` bool [B, H], episode values [B, ...].
        """
        indices = np.asarray(indices, np.int64)
        base = self._episode_start[indices][:, None]
        last = self._episode_length[indices][:, None] - 1
        anchor = self._anchor[indices][:, None]
        obs_raw = anchor + self._obs_offsets[None]
        act_raw = anchor + self._action_offsets[None]
        obs_idx = base + np.clip(obs_raw, 0, last)
        act_idx = base + np.clip(act_raw, 0, last)
        flat: dict[str, np.ndarray] = {
            key: values[act_idx if key == ACTION_KEY else obs_idx] for key, values in self._arrays.items()
        }
        if self._lazy:
            episode_of = self._episode[indices]
            local = np.clip(obs_raw, 0, last)
            for key, per_episode in self._lazy.items():
                flat[key] = gather_frames(per_episode, episode_of, local)
        if self.image_size is not None:
            for key in flat:
                if key.startswith(IMAGE_PREFIX):
                    flat[key] = resize_with_pad(flat[key], self.image_size, self.image_size)
        flat["obs_valid"] = obs_raw >= 0
        flat["action_valid"] = (act_raw >= 0) & (act_raw <= last)
        episode = self._episode[indices]
        for key, values in self._episode_values.items():
            flat[key] = values[episode]
        return nest(flat)


def _output_shape(key: str, shape: tuple[int, ...], image_size: int | None) -> tuple[int, ...]:
    if image_size is None or not key.startswith(IMAGE_PREFIX):
        return shape
    return (image_size, image_size, *shape[2:])


def gather_frames(
    per_episode: Sequence[Any], episode_of: Int[np.ndarray, " b"], steps: Int[np.ndarray, "b to"]
) -> np.ndarray:
    """out[b] = per_episode[episode_of[b]][steps[b]]: [B, K, ...] from per-episode frames [T_e, ...],
    indexing each episode of the batch once (one record read for frames decoded on demand)."""
    first = per_episode[int(episode_of[0])]
    out = np.empty((*steps.shape, *first.shape[1:]), first.dtype)
    for episode in np.unique(episode_of):
        rows = np.flatnonzero(episode_of == episode)
        wanted, inverse = np.unique(steps[rows], return_inverse=True)
        frames = per_episode[int(episode)][wanted]
        out[rows] = frames[inverse.reshape(len(rows), -1)]
    return out


def validate_episodes(
    episodes: Sequence[Mapping[str, np.ndarray]], name: str
) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Check episodes can be windowed; return {key: (dtype, per-step shape)}, taken from episode 0.

    The checks are `robopolicy.data.validate`'s, with episode 0's dtypes and shapes as the spec.
    Raises `DatasetError` naming the dataset, the episode index and the key of the first problem.
    """
    if not episodes:
        raise DatasetError(f"{name}: no episodes")
    if ACTION_KEY not in episodes[0]:
        raise DatasetError(f"{name}: episode 0: key '{ACTION_KEY}' is missing")
    layout = {k: (_dtype(v), tuple(np.shape(v)[1:])) for k, v in episodes[0].items()}
    specs = {key: ArraySpec(shape, dtype.name) for key, (dtype, shape) in layout.items()}
    for i, episode in enumerate(episodes):
        extra = sorted(set(episode) - set(layout))
        if extra:
            raise DatasetError(
                f"{name}: episode {i}: key '{extra[0]}' is unexpected (episode 0 does not have it)"
            )
        raise_if_problems(check_arrays(episode, specs, name, i, length_key=ACTION_KEY))
    return layout


def check_compatible(sources: Sequence[WindowSource]) -> None:
    """Sources mixed into one batch must agree on keys, dtypes, per-step shapes and window shape."""
    ref = sources[0]
    for other in sources[1:]:
        for key in sorted(set(ref.layout) | set(other.layout)):
            if key not in other.layout:
                raise UserError(f"{other.name}: episode 0: missing key '{key}' (dataset {ref.name} has it)")
            if key not in ref.layout:
                raise UserError(f"{other.name}: episode 0: key '{key}' not in dataset {ref.name}")
            if other.layout[key] != ref.layout[key]:
                (d0, s0), (d1, s1) = ref.layout[key], other.layout[key]
                raise UserError(
                    f"{other.name}: episode 0: key '{key}' is {d1} {s1} per step, dataset {ref.name} has {d0} {s0}"
                )
        if other.spec != ref.spec:
            raise UserError(f"{other.name}: window {other.spec} differs from dataset {ref.name}'s {ref.spec}")
        if set(other._episode_values) != set(ref._episode_values):
            raise UserError(f"{other.name}: per-episode keys differ from dataset {ref.name}'s")


def _dtype(values: Any) -> np.dtype:
    """dtype of an array or of frames decoded on demand (which would decode everything in np.asarray)."""
    return np.dtype(values.dtype) if hasattr(values, "dtype") else np.asarray(values).dtype


def _map_nested(tree: Batch, fn: Callable[[np.ndarray], np.ndarray]) -> Batch:
    return {k: _map_nested(v, fn) if isinstance(v, dict) else fn(v) for k, v in tree.items()}
