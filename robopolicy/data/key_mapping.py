"""Key mappings: how the keys of an RLDS dataset written by another project become an `Episode`.

A mapping names, relative to each step of `steps`, the image keys (and the camera each becomes), the
proprio state, the action and the language instruction; optionally reward, terminal flag and
episode-metadata keys (relative to the episode record). It may also fix the per-step state and action
dimensions the dataset must have and declare per-dimension action bounds, which `robopolicy data
check` then enforces. Image sizes come from the data (any size, the same in every episode).

Presets (`--mapping NAME`):

- `robopolicy`: datasets written by `robopolicy collect` (every observation key but `state` and
  `object_state` is a camera; `object_state`, the objects' poses, when present).
- `robopolicy_embeddings`: embedding caches written by `robopolicy cache-embeddings`.
- every TOML file in the folders of `ROBOPOLICY_MAPPING_PATH` (separated by `os.pathsep`, searched
  first, the first file of a name wins) and in `datasets/key_mappings/`, by file name; shipped: `libero`, the LIBERO RLDS
  conversions used by OpenVLA and openpi: `observation/image` (→ `agentview`) and
  `observation/wrist_image` (→ `wrist`), uint8 [H, W, 3] of any size; `observation/state` float32 [8]
  (end-effector position, axis-angle, two gripper fingers); `action` float32 [7];
  `language_instruction`.
  Also shipped, for LeRobotDatasets (keys are LeRobot feature names): `lerobot_libero` (LeRobot's
  naming, `observation.images.image`, `observation.state`, `action`) and `openpi_libero_lerobot`
  (openpi's LIBERO conversion: `image`, `wrist_image`, `state`, `actions`).
- `auto` (default): picks one of the above from the dataset's features; for a LeRobotDataset,
  `lerobot_mapping` (LeRobot's feature names, see `robopolicy.data.lerobot_reader`).

Any other layout is a TOML file, `--mapping my_mapping.toml`, with the fields of `KeyMapping`:

    name = "my_robot"
    cameras = { "observation/front_rgb" = "agentview", "observation/hand_rgb" = "wrist" }
    state = "observation/proprio"
    action = "action"
    instruction = "language_instruction"
    action_dim = 7
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jaxtyping import Bool, Float

from robopolicy.data.episode import Episode
from robopolicy.data.validate import ArraySpec, EpisodeValues
from robopolicy.errors import UserError
from robopolicy.paths import datasets_dir, files_by_name
from robopolicy.typed_config import from_table, read_toml

MAPPING_PATH_ENV = "ROBOPOLICY_MAPPING_PATH"


@dataclass(frozen=True)
class KeyMapping:
    """Source keys → `Episode` fields.

    Attributes:
        name: shown in `data info` and error messages.
        cameras: step key of each image (uint8 [H, W, 3]) → camera name.
        object_state: optional step key of the objects' poses (float [O]), read into
            `Episode.object_state` when an episode has it (probes only).
        embeddings: step key of each per-frame embedding (float [D]) → camera name.
        state, action: step keys of proprio (float [S]) and action (float [A]).
        instruction: step key of the language instruction (text); None: the dataset has none.
        reward, is_terminal: optional step keys; absent ones read as 0 and "succeeded".
        is_first, is_last: step keys of the RLDS boundary flags, checked (True at the first / last
            step only) when the dataset has them.
        task, episode_id, seed, init_state_id: optional episode-record keys
            (e.g. `episode_metadata/task`); without `task` the instruction names the task, without
            `episode_id` the record index is the id.
        image_shape, state_dim, action_dim: required per-step shapes (None: any, but consistent
            across episodes); with `action_bounds` the action has one dimension per bound.
        action_bounds: optional [low, high] per action dimension; values outside are problems.
        float_dtype: required dtype of state, action and embeddings: "float32" (what robopolicy and
            the LIBERO conversions write) or "floating" (any float width, converted on reading).
    """

    name: str
    cameras: Mapping[str, str] = field(default_factory=dict)
    embeddings: Mapping[str, str] = field(default_factory=dict)
    state: str = "observation/state"
    action: str = "action"
    instruction: str | None = "language_instruction"
    reward: str | None = "reward"
    is_terminal: str | None = "is_terminal"
    is_first: str | None = "is_first"
    is_last: str | None = "is_last"
    task: str | None = None
    episode_id: str | None = None
    seed: str | None = None
    init_state_id: str | None = None
    image_shape: tuple[int, int, int] | None = None
    state_dim: int | None = None
    action_dim: int | None = None
    action_bounds: tuple[tuple[float, float], ...] | None = None
    float_dtype: Literal["float32", "floating"] = "float32"
    object_state: str | None = None

    def __post_init__(self) -> None:
        names = [*self.cameras.values(), *self.embeddings.values()]
        if len(set(names)) != len(names):
            raise ValueError(f"key mapping '{self.name}': camera names must be unique, got {names}")
        if self.image_shape is not None and (len(self.image_shape) != 3 or self.image_shape[-1] != 3):
            raise ValueError(
                f"key mapping '{self.name}': image_shape must be [H, W, 3], got {self.image_shape}"
            )
        if self.float_dtype not in ("float32", "floating"):
            raise ValueError(f"key mapping '{self.name}': float_dtype must be float32 or floating")
        for dim_name in ("state_dim", "action_dim"):
            dim = getattr(self, dim_name)
            if dim is not None and dim < 1:
                raise ValueError(f"key mapping '{self.name}': {dim_name} must be positive, got {dim}")
        if self.action_bounds is not None:
            if self.action_dim is not None and len(self.action_bounds) != self.action_dim:
                raise ValueError(
                    f"key mapping '{self.name}': action_bounds has {len(self.action_bounds)} [low, high] "
                    f"pairs, action_dim is {self.action_dim}"
                )
            if not self.action_bounds or any(not low <= high for low, high in self.action_bounds):
                raise ValueError(
                    f"key mapping '{self.name}': action_bounds must be one [low, high] pair per action "
                    f"dimension with low <= high, got {self.action_bounds}"
                )

    def step_specs(self) -> dict[str, ArraySpec]:
        """Per-step array specs keyed by source step key, as `validate.check_arrays` takes them."""
        image = self.image_shape or (None, None, 3)
        specs = {key: ArraySpec(tuple(image), "uint8") for key in self.cameras}
        specs.update({key: ArraySpec((None,), self.float_dtype) for key in self.embeddings})
        specs[self.state] = ArraySpec((self.state_dim,), self.float_dtype)
        action_dim = len(self.action_bounds) if self.action_bounds else self.action_dim
        specs[self.action] = ArraySpec((action_dim,), self.float_dtype)
        return specs

    def declared_bounds(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """Declared per-dimension bounds by source key, as `validate.check_value_ranges` takes them."""
        return {self.action: self.action_bounds} if self.action_bounds else {}

    def episode_values(self, episode: Episode, record: int | None = None) -> EpisodeValues:
        """An episode's state and action under their source keys, for `validate.check_value_ranges`."""
        return EpisodeValues(
            episode.episode_id, {self.state: episode.state, self.action: episode.action}, record
        )


def mapped_episode(
    mapping: KeyMapping,
    arrays: Mapping[str, np.ndarray],
    *,
    episode_id: int,
    instruction: str,
    meta: Callable[[str], Any],
    reward: Float[np.ndarray, " t"] | None = None,
    terminal: Bool[np.ndarray, " t"] | None = None,
) -> Episode:
    """The `Episode` of one episode's checked per-step arrays, keyed by the mapping's source keys.

    `meta` looks up an episode-record key (None when absent). Without `reward` the rewards are 0;
    without `terminal` flags the episode counts as a success. Every reader builds episodes here.
    """
    n = len(arrays[mapping.action])

    def record(key: str | None) -> Any:
        value = meta(key) if key else None
        return value.item() if isinstance(value, np.ndarray) else value

    task, seed, init_state_id = record(mapping.task), record(mapping.seed), record(mapping.init_state_id)
    return Episode(
        frames={cam: arrays[key] for key, cam in mapping.cameras.items()},
        embeddings={cam: arrays[key].astype(np.float32) for key, cam in mapping.embeddings.items()},
        state=arrays[mapping.state].astype(np.float32),
        action=arrays[mapping.action].astype(np.float32),
        object_state=(
            arrays[mapping.object_state].astype(np.float32)
            if mapping.object_state and mapping.object_state in arrays
            else None
        ),
        reward=np.zeros(n, np.float32) if reward is None else reward.astype(np.float32).reshape(n),
        task=instruction if task is None else task.decode() if isinstance(task, bytes) else str(task),
        instruction=instruction,
        episode_id=episode_id,
        seed=-1 if seed is None else int(seed),
        init_state_id=-1 if init_state_id is None else int(init_state_id),
        success=True if terminal is None else bool(np.asarray(terminal).reshape(n)[-1]),
    )


_DERIVED = ("auto", "robopolicy", "robopolicy_embeddings")  # built from each dataset's own features


def preset_files() -> dict[str, Path]:
    """Named mapping files by name: `<name>.toml` in the folders of `ROBOPOLICY_MAPPING_PATH`, then the
    shipped `datasets/key_mappings/`; where two folders hold one name, the earlier folder's file wins."""
    return files_by_name(MAPPING_PATH_ENV, datasets_dir() / "key_mappings")


def preset_names() -> tuple[str, ...]:
    return (*_DERIVED, *preset_files())


def libero_mapping() -> KeyMapping:
    """The shipped LIBERO (OpenVLA/openpi RLDS) mapping (what `auto` detects, whatever users add)."""
    return load_mapping_file(datasets_dir() / "key_mappings" / "libero.toml")


_METADATA = {
    "task": "episode_metadata/task",
    "episode_id": "episode_metadata/episode_id",
    "seed": "episode_metadata/seed",
    "init_state_id": "episode_metadata/init_state_id",
}


def robopolicy_mapping(step_keys: set[str], embeddings: bool = False) -> KeyMapping:
    """Our own layout: every `observation/*` key but `state` and `object_state` is a camera (or an
    embedding); `object_state` is the objects' poses."""
    objects = "observation/object_state"
    observed = sorted(
        k for k in step_keys if k.startswith("observation/") and k not in ("observation/state", objects)
    )
    per_camera = {key: key.split("/", 1)[1] for key in observed}
    object_state = objects if objects in step_keys else None
    if embeddings:
        return KeyMapping(
            name="robopolicy_embeddings", embeddings=per_camera, object_state=object_state, **_METADATA
        )
    return KeyMapping(name="robopolicy", cameras=per_camera, object_state=object_state, **_METADATA)


def lerobot_mapping(keys: set[str], image_keys: set[str]) -> KeyMapping:
    """LeRobot's naming (what `auto` picks for a LeRobotDataset): every image or video feature in
    `image_keys` is a camera named after its last dotted part (`observation.images.wrist_image` →
    `wrist_image`); `observation.state` and `action`, or openpi's `state` and `actions`; the instruction
    is the frame's task; `next.reward` and `next.success` when present. Where two last parts clash, the
    cameras keep their whole feature names."""
    cameras = {key: key.rsplit(".", 1)[-1] for key in sorted(image_keys)}
    if len(set(cameras.values())) < len(cameras):
        cameras = {key: key for key in cameras}
    state = "state" if "observation.state" not in keys and "state" in keys else "observation.state"
    action = "actions" if "action" not in keys and "actions" in keys else "action"
    return KeyMapping(
        name="lerobot",
        cameras=cameras,
        state=state,
        action=action,
        instruction="task",
        reward="next.reward",
        is_terminal="next.success",
        episode_id="episode_index",
    )


def detect_mapping(step_keys: set[str], builder_name: str) -> KeyMapping:
    """The preset a dataset's features fit; robopolicy's own layout when nothing else fits."""
    if builder_name == "robopolicy_embeddings":
        return robopolicy_mapping(step_keys, embeddings=True)
    libero = libero_mapping()
    if step_keys & set(libero.cameras):
        return libero
    return robopolicy_mapping(step_keys)


def resolve_mapping(spec: str, step_keys: set[str], builder_name: str) -> KeyMapping:
    """`--mapping` value (a preset name or a TOML file) → the mapping for one dataset."""
    if spec == "auto":
        return detect_mapping(step_keys, builder_name)
    if spec == "robopolicy":
        return robopolicy_mapping(step_keys)
    if spec == "robopolicy_embeddings":
        return robopolicy_mapping(step_keys, embeddings=True)
    return load_mapping_file(preset_files().get(spec, spec))


def check_mapping_spec(spec: str) -> None:
    """Fail early, with one line, on a `--mapping` value that is neither a preset nor a readable file."""
    if spec not in preset_names():
        load_mapping_file(spec)


def load_mapping_file(path: str | Path) -> KeyMapping:
    """Read a custom mapping from TOML; unknown keys and values of the wrong type or range are one-line
    `UserError`s naming the file and the field."""
    path = Path(path)
    if path.suffix != ".toml":
        raise UserError(
            f"unknown key mapping {str(path)!r}: choose one of {', '.join(preset_names())} or a .toml file"
        )
    raw = read_toml(path, "key-mapping")
    raw.setdefault("name", path.stem)
    return from_table(KeyMapping, raw, str(path))
