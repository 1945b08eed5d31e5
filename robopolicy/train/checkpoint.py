"""Orbax checkpoints of training runs.

Each checkpoint holds four items: `state`, the train state (params, EMA params, optimizer state,
step, RNG key); `policy`, the EMA weights alone, which is all inference restores; `meta`, JSON with
everything inference needs besides weights: the policy config, the normalization statistics (and the
dataset statistics they came from), the instruction vocabulary and the task; and `data_iter`, the
grain iterator state of every host (grain's own orbax handler writes one JSON file per process), so a
resumed run reads exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from robopolicy.errors import UserError


def checkpoint_manager(
    directory: Path, max_to_keep: int = 3, keep_period: int | None = None
) -> ocp.CheckpointManager:
    """A manager for `directory` (created if needed) that keeps the last `max_to_keep` steps, and
    every step divisible by `keep_period` besides. Saves are asynchronous."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, keep_period=keep_period, create=True, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(directory.resolve(), options=options)


DATA_ITER_ITEM = "data_iter"


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: dict[str, Any],
    meta: dict[str, Any],
    data_iter: grain.DatasetIterator | None = None,
) -> None:
    """Save step `step`. The iterator's state is written before this returns (its handler is
    synchronous), so the loop may advance the iterator while the arrays are still being written."""
    items = {
        "state": ocp.args.StandardSave(state),
        "policy": ocp.args.StandardSave(state["ema_params"]),
        "meta": ocp.args.JsonSave(meta),
    }
    if data_iter is not None:
        items[DATA_ITER_ITEM] = grain.checkpoint.CheckpointSave(data_iter)
    manager.save(step, args=ocp.args.Composite(**items))


def restore(
    manager: ocp.CheckpointManager,
    step: int,
    abstract_state: Any,
    data_iter: grain.DatasetIterator | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Restore train state (shaped like `abstract_state`) and meta from `step`; with `data_iter`, also
    set that iterator to where the saved run's iterator was."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
    if data_iter is not None:
        if not (Path(manager.directory) / str(step) / DATA_ITER_ITEM).is_dir():
            raise UserError(
                f"{Path(manager.directory) / str(step)}: checkpoint has no data-iterator state; "
                "it was written by an older version, start a new run with a new --out"
            )
        items[DATA_ITER_ITEM] = grain.checkpoint.CheckpointRestore(data_iter)
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    return restored.state, restored.meta


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """Only the JSON metadata of a checkpoint."""
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore_policy_params(directory: Path, step: int, abstract_params: Any) -> Any:
    """Only the EMA weights of a checkpoint, shaped like `abstract_params`, on one device (whatever
    mesh the run was trained on)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_params
    )
    manager = ocp.CheckpointManager(directory.resolve())
    try:
        return manager.restore(
            step, args=ocp.args.Composite(policy=ocp.args.StandardRestore(abstract))
        ).policy
    finally:
        manager.close()


def param_mismatches(directory: Path, step: int, abstract_params: Any) -> list[str]:
    """Differences between the saved EMA weights and `abstract_params`: each entry names a parameter
    path with its saved and expected shape, or one that only one side has. Empty when they fit."""
    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax warns that the item has no step-level metadata
    try:
        saved = ocp.StandardCheckpointer().metadata(directory.resolve() / str(step) / "policy").item_metadata
    finally:
        absl_logging.set_verbosity(level)

    def shapes(tree: Any) -> dict[str, tuple[int, ...]]:
        flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
        named = {}
        for path, leaf in flat:
            keys = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
            if keys and keys[-1] == "value":  # saved nnx Variables carry their array as `.value`
                keys = keys[:-1]
            named["/".join(keys)] = tuple(leaf.shape)
        return named

    have, want = shapes(saved), shapes(abstract_params)
    out = [
        f"{k}: saved {have[k]}, expected {want[k]}"
        for k in sorted(set(have) & set(want))
        if have[k] != want[k]
    ]
    out += [f"{k}: missing in the checkpoint" for k in sorted(set(want) - set(have))]
    out += [f"{k}: not in this policy config" for k in sorted(set(have) - set(want))]
    return out


def resolve_checkpoint(path: str | Path) -> tuple[Path, int]:
    """A run folder or checkpoint-manager folder → (manager folder, latest step).

    Accepts `RUN/`, `RUN/checkpoints/` or `RUN/checkpoints/<step>`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint (path does not exist)")
    if path.name.isdigit() and path.parent.is_dir():
        return path.parent, int(path.name)
    for candidate in (path / "checkpoints", path):
        steps = (
            sorted(int(p.name) for p in candidate.iterdir() if p.is_dir() and p.name.isdigit())
            if candidate.is_dir()
            else []
        )
        if steps:
            return candidate, steps[-1]
    raise UserError(
        f"{path}: no checkpoint found (expected numbered step folders in it or in {path / 'checkpoints'})"
    )


def load_meta(path: str | Path) -> tuple[Path, int, dict[str, Any]]:
    """(manager folder, step, meta) of the latest checkpoint at `path`."""
    directory, step = resolve_checkpoint(path)
    manager = ocp.CheckpointManager(directory.resolve())
    try:
        meta = restore_meta(manager, step)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise UserError(f"{directory / str(step)}: unreadable checkpoint ({e})") from e
    finally:
        manager.close()
    return directory, step, meta
