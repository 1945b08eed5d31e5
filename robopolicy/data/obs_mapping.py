"""Observation mappings: which request keys of a policy server hold a policy's cameras, state and
instruction (the observation-side counterpart of `robopolicy.data.key_mapping` for datasets).

`robopolicy serve --obs-mapping NAME|FILE.toml` reads requests through one; `robopolicy eval --policy
ws://…` writes its env observations through the server's (from the server's metadata) or a named one.

Named mappings:

- `robopolicy` (default): the env's own keys: one key per camera, named like the camera
  (`agentview`, `wrist`), `state`, and `prompt` for the instruction.
- every TOML file in the folders of `ROBOPOLICY_OBS_MAPPING_PATH` (separated by `os.pathsep`,
  searched first, the first file of a name wins) and in `datasets/obs_mappings/`, by file name;
  shipped: `openpi_libero`, the keys of openpi's LIBERO example client: `observation/image`
  (→ `agentview`), `observation/wrist_image` (→ `wrist`), `observation/state`, `prompt`, images sent
  at 224×224.

Any other layout is a TOML file with the fields of `ObsMapping`:

    name = "my_robot"
    cameras = { "cam_high" = "agentview", "cam_wrist" = "wrist" }
    state = "qpos"
    instruction = "task"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robopolicy.errors import UserError
from robopolicy.paths import datasets_dir, files_by_name
from robopolicy.typed_config import from_table, read_toml

OBS_MAPPING_PATH_ENV = "ROBOPOLICY_OBS_MAPPING_PATH"
DEFAULT_MAPPING = "robopolicy"


@dataclass(frozen=True)
class ObsMapping:
    """Request keys → a policy's observation.

    Attributes:
        name: shown in the server's metadata and in error messages.
        cameras: request key of each image (uint8 [H, W, 3]; the server resizes it to the policy's
            size) → camera name; empty: one key per policy camera, named like the camera.
        state: request key of the proprio state (float [S]).
        instruction: request key of the language instruction (a string); empty: requests carry none.
        image_size: the square size clients send images at when the server does not say (0: the
            policy's, which a robopolicy server names in its metadata).
    """

    name: str
    cameras: Mapping[str, str] = field(default_factory=dict)
    state: str = "state"
    instruction: str = "prompt"
    image_size: int = 0

    def __post_init__(self) -> None:
        keys = [*self.cameras, self.state, *([self.instruction] if self.instruction else [])]
        if len(set(keys)) != len(keys):
            raise ValueError(f"observation mapping '{self.name}': request keys must be unique, got {keys}")
        names = list(self.cameras.values())
        if len(set(names)) != len(names):
            raise ValueError(f"observation mapping '{self.name}': camera names must be unique, got {names}")
        if self.image_size < 0:
            raise ValueError(
                f"observation mapping '{self.name}': image_size must be >= 0, got {self.image_size}"
            )

    def for_cameras(self, cameras: tuple[str, ...]) -> ObsMapping:
        """This mapping for a policy with `cameras`: an empty camera table names each camera's key after
        it; a table that misses one of them is a ValueError."""
        if not self.cameras:
            return ObsMapping(
                self.name, {c: c for c in cameras}, self.state, self.instruction, self.image_size
            )
        missing = [c for c in cameras if c not in self.cameras.values()]
        if missing:
            raise ValueError(
                f"observation mapping '{self.name}' has no request key for camera(s) {', '.join(missing)} "
                f"(it maps {dict(self.cameras)})"
            )
        return self

    def to_table(self) -> dict[str, Any]:
        """The mapping as a TOML/JSON/msgpack table (`from_table` reads it back)."""
        return {**asdict(self), "cameras": dict(self.cameras)}

    @classmethod
    def from_table(cls, table: Any, where: str) -> ObsMapping:
        """From a table (a TOML file, a server's metadata); bad fields are a one-line `UserError` naming `where`."""
        return from_table(cls, table, where)

    def request(
        self, obs: Mapping[str, np.ndarray], instruction: str | None = None
    ) -> dict[str, np.ndarray | str]:
        """An env observation (camera names and `state`) as request keys; the instruction if the
        mapping has a key for it."""
        request: dict[str, np.ndarray | str] = {key: obs[camera] for key, camera in self.cameras.items()}
        request[self.state] = obs["state"]
        if self.instruction and instruction is not None:
            request[self.instruction] = instruction
        return request


def mapping_files() -> dict[str, Path]:
    """Named mapping files by name: `<name>.toml` in the folders of `ROBOPOLICY_OBS_MAPPING_PATH`, then the
    shipped `datasets/obs_mappings/`; where two folders hold one name, the earlier folder's file wins."""
    return files_by_name(OBS_MAPPING_PATH_ENV, datasets_dir() / "obs_mappings")


def mapping_names() -> tuple[str, ...]:
    return (DEFAULT_MAPPING, *mapping_files())


def load_obs_mapping(spec: str) -> ObsMapping:
    """`--obs-mapping` value (a name or a TOML file) → the mapping; a one-line `UserError` if it is
    neither or the file is invalid."""
    if spec == DEFAULT_MAPPING:
        return ObsMapping(DEFAULT_MAPPING)
    path = mapping_files().get(spec, Path(spec))
    if path.suffix != ".toml":
        raise UserError(
            f"unknown observation mapping {spec!r}: choose one of {', '.join(mapping_names())} or a .toml file"
        )
    raw = read_toml(path, "observation-mapping")
    raw.setdefault("name", path.stem)
    return ObsMapping.from_table(raw, str(path))
