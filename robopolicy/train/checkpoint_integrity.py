"""Is a saved checkpoint readable? Reads every file of a step the way orbax would, but synchronously.

Orbax meets a damaged checkpoint deep inside its asynchronous restore: a truncated data file or a
missing OCDBT manifest fails one of many concurrent reads, the error surfaces as a long traceback,
and the reads still in flight then print "Event loop is closed" tracebacks of their own. Checking
first (JSON files with `json`, array data through tensorstore's OCDBT key-value store, one value at
a time) finds the damage before orbax touches it and names the file in one line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import tensorstore as ts
from etils import epath

from robopolicy.errors import UserError
from robopolicy.paths import is_url

# Files orbax, its JSON handler and grain's iterator handler write as JSON.
_JSON_NAMES = {"_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata"}
_MANIFEST = "manifest.ocdbt"


class DamagedCheckpoint(UserError):
    """A checkpoint file is missing, truncated or not what orbax wrote; the message names it."""


def check_step(step_dir: epath.Path) -> None:
    """DamagedCheckpoint naming the first damaged file among all items of one step folder."""
    _check_json(step_dir / "_CHECKPOINT_METADATA", required=False)
    for item in sorted(p for p in step_dir.iterdir() if p.is_dir()):
        check_item(item)


def check_item(item_dir: epath.Path, read_arrays: bool = True) -> None:
    """DamagedCheckpoint naming the first damaged file of one item (e.g. `RUN/checkpoints/6/policy`).

    Without `read_arrays` only the structure is checked (JSON files parse, the OCDBT manifest is
    there), which is all reading the item's metadata needs.
    """
    if not item_dir.is_dir():
        raise DamagedCheckpoint(f"{item_dir}: missing from the checkpoint")
    for path in _files(item_dir):
        if path.name in _JSON_NAMES or path.suffix == ".json" or path.parent.name == "array_metadatas":
            _check_json(path)
    if (item_dir / _MANIFEST).exists() or any(item_dir.glob("ocdbt.process_*")):
        if not (item_dir / _MANIFEST).is_file():
            raise DamagedCheckpoint(
                f"{item_dir / _MANIFEST}: missing; the checkpoint's arrays cannot be read"
            )
        if read_arrays:
            _read_arrays(item_dir)


def _check_json(path: epath.Path, required: bool = True) -> None:
    if not path.is_file():
        if required:
            raise DamagedCheckpoint(f"{path}: missing from the checkpoint")
        return
    try:
        json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        what = "empty" if not epath.Path(path).stat().length else f"not valid JSON ({e})"
        raise DamagedCheckpoint(f"{path}: {what}; the checkpoint is damaged") from e


def _read_arrays(item_dir: epath.Path) -> None:
    """Read every value of the item's OCDBT database, which fails on a truncated or missing data file."""
    try:
        store = ts.KvStore.open({"driver": "ocdbt", "base": _kvstore(item_dir)}).result()
        for key in store.list().result():
            store.read(key).result()
    except ValueError as e:
        detail = str(e).splitlines()[0]
        raise DamagedCheckpoint(f"{_culprit(item_dir, detail)}: unreadable ({detail})") from e


def _kvstore(item_dir: epath.Path) -> str | dict[str, Any]:
    """TensorStore's key-value store under an item's OCDBT database. TensorStore reads buckets
    itself, not through epath; a gs:// item is read with the spec orbax writes it with (its GCS
    driver, which `TENSORSTORE_GCS_BACKEND` selects)."""
    if str(item_dir).startswith("gs://"):
        from orbax.checkpoint._src.path import gcs_utils

        return gcs_utils.get_kvstore_for_gcs(f"{item_dir}/")
    return f"{item_dir}/" if is_url(item_dir) else f"file://{item_dir.resolve()}/"


def _culprit(item_dir: epath.Path, detail: str) -> epath.Path:
    """The data file a tensorstore read error points at, when its message pins down one; else the item.

    A truncated file shows up as "... not valid for value of size N": the one data file of N bytes.
    """
    size = re.search(r"value of size (\d+)", detail)
    if size:
        files = [p for p in _files(item_dir) if p.parent.name == "d"]
        matches = [p for p in files if p.stat().length == int(size.group(1))]
        if len(matches) == 1:
            return matches[0]
    return item_dir


def _files(folder: epath.Path) -> list[epath.Path]:
    """Every file under `folder`, sorted (a walk: epath refuses recursive globs, costly on buckets)."""
    return sorted(root / name for root, _dirs, names in epath.Path(folder).walk() for name in names)
