"""Where the task definitions (`envs/`) and dataset builders (`datasets/`) live, and the user folders
searched before them.

In a source checkout they sit next to the package; a non-editable install carries copies
inside `robopolicy/_bundled/` (see `pyproject.toml`). Both layouts resolve here so that no other
module needs to care. Users of an installed package cannot write into it, so what they add (tasks,
key mappings) lives in their own folders, named by an environment variable that lists them like
`PATH` does (`search_path`).

Run folders, checkpoints and caches may live in a bucket (`gs://...`, where TPU pods keep them):
`storage_path` gives them as `etils.epath.Path`, which reads and writes URLs through their own
filesystem layer; `pathlib.Path(...).resolve()` would turn `gs://b/run` into `gs:/b/run`.
"""

from __future__ import annotations

import os
from pathlib import Path

from etils import epath

_PACKAGE_DIR = Path(__file__).resolve().parent


def _resolve(name: str) -> Path:
    for candidate in (_PACKAGE_DIR.parent / name, _PACKAGE_DIR / "_bundled" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"robopolicy data folder '{name}/' not found next to or inside {_PACKAGE_DIR}")


def envs_dir() -> Path:
    """Folder holding task definitions, assets and fixed initial states."""
    return _resolve("envs")


def datasets_dir() -> Path:
    """Folder holding the TFDS dataset builders, one sub-folder per dataset."""
    return _resolve("datasets")


def search_path(variable: str, bundled: Path) -> tuple[Path, ...]:
    """The folders named by the environment variable `variable` (separated by `os.pathsep`, searched
    first, in order), then `bundled`. Worker processes inherit the variable, so they search alike."""
    user = [Path(p).expanduser() for p in os.environ.get(variable, "").split(os.pathsep) if p]
    return (*user, bundled)


def files_by_name(variable: str, bundled: Path, suffix: str = ".toml") -> dict[str, Path]:
    """The `<name><suffix>` files in the folders of `search_path(variable, bundled)`, by name; where two
    folders hold one name, the earlier folder's file wins."""
    found: dict[str, Path] = {}
    for folder in search_path(variable, bundled):
        for path in sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else ():
            found.setdefault(path.name.removesuffix(suffix), path)
    return found


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names remote storage (`gs://`, `s3://`, ...) rather than a local file."""
    return "://" in os.fspath(path)


def storage_path(path: str | os.PathLike[str]) -> epath.Path:
    """A run folder, checkpoint or cache location: a URL unchanged, a local path made absolute
    (orbax needs absolute paths; symlinks are kept, as a shared mount may be one)."""
    text = os.fspath(path)
    return epath.Path(text if is_url(text) else os.path.abspath(os.path.expanduser(text)))
