"""Orbax checkpoints of training runs: policy training and DynaMo pretraining.

Every checkpoint holds `state`, the whole train state (params, optimizer state, step, RNG key and the
objective's extras: a policy's EMA params, DynaMo's EMA target encoder); `meta`, JSON with the model
config and everything else inference needs besides weights (for a policy: the normalization
statistics and the dataset statistics they came from, the instruction vocabulary and the task); and
the weights inference restores alone: `policy`, a policy's EMA weights, or `encoder`, the online
encoder of a DynaMo run (meta kind "dynamo_encoder"). A policy run also saves `data_iter`, the grain
iterator state of every host (grain's own orbax handler writes one JSON file per process), so a
resumed run reads exactly the batches an uninterrupted run would; DynaMo's batches are a function of
the step number and need none.

Every reader checks the files it needs first (`checkpoint_integrity`), so a damaged checkpoint is one
line naming the file; training resumes from the newest intact step (`newest_intact_step`).

Locations are `etils.epath` paths (`robopolicy.paths.storage_path`), so a run folder in a bucket
(`gs://...`) reaches orbax unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from etils import epath
from flax import nnx

from robopolicy.errors import UserError
from robopolicy.models.dynamo import make_encoder
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.paths import storage_path
from robopolicy.train.checkpoint_integrity import DamagedCheckpoint, check_item, check_step

DYNAMO_KIND = "dynamo_encoder"  # meta["kind"] of a DynaMo run; policy runs record no kind
POLICY_ITEM, ENCODER_ITEM, DATA_ITER_ITEM = "policy", "encoder", "data_iter"
DAMAGED_FOLDER = "damaged_checkpoints"  # next to `checkpoints/`: steps set aside on resume


def checkpoint_manager(
    directory: str | os.PathLike[str], max_to_keep: int = 3, keep_period: int | None = None
) -> ocp.CheckpointManager:
    """A manager for `directory` (created if needed) that keeps the last `max_to_keep` steps, and
    every step divisible by `keep_period` besides. Saves are asynchronous."""
    if jax.process_count() > 1:
        _use_coordination_barriers()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, keep_period=keep_period, create=True, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(storage_path(directory), options=options)


def _use_coordination_barriers() -> None:
    """Orbax's barriers between hosts through the coordination service (they wait as long as a host
    needs) instead of collectives, whose first connection gives up after 30 s on CPUs. The switch is
    an absl flag; a program that never parses flags (ours) marks them parsed to set it."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    flags.FLAGS.experimental_orbax_use_distributed_barrier = True


def inference_weights(state: dict[str, Any], meta: dict[str, Any]) -> tuple[str, Any]:
    """(item name, weights) that inference restores alone: a policy's EMA weights, a DynaMo encoder."""
    if meta.get("kind") == DYNAMO_KIND:
        encoder = state["params"]["encoder"]
        if "batch_stats" in state:  # BatchNorm's running statistics travel with the encoder
            encoder = nnx.merge_state(encoder, state["batch_stats"]["encoder"])
        return ENCODER_ITEM, encoder
    return POLICY_ITEM, state["ema_params"]


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: dict[str, Any],
    meta: dict[str, Any],
    data_iter: grain.DatasetIterator | None = None,
) -> None:
    """Save step `step`. The iterator's state is written before this returns (its handler is
    synchronous), so the loop may advance the iterator while the arrays are still being written."""
    name, weights = inference_weights(state, meta)
    items = {
        "state": ocp.args.StandardSave(state),
        name: ocp.args.StandardSave(weights),
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
        if not (epath.Path(manager.directory) / str(step) / DATA_ITER_ITEM).is_dir():
            raise UserError(
                f"{epath.Path(manager.directory) / str(step)}: checkpoint has no data-iterator state; "
                "it was written by an older version, start a new run with a new --out"
            )
        items[DATA_ITER_ITEM] = grain.checkpoint.CheckpointRestore(data_iter)
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    return restored.state, restored.meta


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    """Only the JSON metadata of a checkpoint."""
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def saved_steps(directory: epath.Path) -> list[int]:
    """The step folders of a checkpoint-manager folder, oldest first (orbax's own unfinished
    `<step>.orbax-checkpoint-tmp-*` folders are not steps)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def newest_intact_step(directory: epath.Path) -> tuple[int | None, list[tuple[int, DamagedCheckpoint]]]:
    """(the newest step whose every file reads back, or None; (step, damage) of the newer ones)."""
    damaged: list[tuple[int, DamagedCheckpoint]] = []
    for step in reversed(saved_steps(directory)):
        try:
            check_step(directory / str(step))
        except DamagedCheckpoint as e:
            damaged.append((step, e))
            continue
        return step, damaged
    return None, damaged


def set_aside(directory: epath.Path, step: int) -> epath.Path:
    """Move a damaged step folder out of the manager's way, into `damaged_checkpoints/` next to it;
    nothing is deleted. Returns where it went."""
    target = directory.parent / DAMAGED_FOLDER / str(step)
    n = 1
    while target.exists():
        n += 1
        target = directory.parent / DAMAGED_FOLDER / f"{step}.{n}"
    target.parent.mkdir(parents=True, exist_ok=True)
    (directory / str(step)).rename(target)
    return target


def _restore_item(directory: epath.Path, step: int, item: str, abstract: Any) -> Any:
    """One array item of a checkpoint, shaped like `abstract`, after checking that its files read back."""
    check_item(directory / str(step) / item)
    manager = ocp.CheckpointManager(directory)
    try:
        restored = manager.restore(
            step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)})
        )
    finally:
        manager.close()
    return restored[item]


def restore_policy_params(directory: epath.Path, step: int, abstract_params: Any) -> Any:
    """Only the EMA weights of a checkpoint, shaped like `abstract_params`, on one device (whatever
    mesh the run was trained on). UserError naming the file when the checkpoint is damaged."""
    return _restore_item(directory, step, POLICY_ITEM, _on_one_device(abstract_params))


def _on_one_device(abstract: Any) -> Any:
    """Shapes and dtypes of `abstract`, placed on this process's first device: weights read for
    inference load on one device, whatever mesh and processes wrote them."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)


def param_mismatches(directory: epath.Path, step: int, abstract_params: Any) -> list[str]:
    """Differences between the saved EMA weights and `abstract_params`: each entry names a parameter
    path with its saved and expected shape, or one that only one side has. Empty when they fit.
    UserError naming the file when the item's metadata cannot be read."""
    item = directory / str(step) / POLICY_ITEM
    check_item(item, read_arrays=False)
    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # orbax warns that the item has no step-level metadata
    try:
        saved = ocp.StandardCheckpointer().metadata(item).item_metadata
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


def resolve_checkpoint(path: str | os.PathLike[str]) -> tuple[epath.Path, int]:
    """A run folder or checkpoint-manager folder → (manager folder as an absolute path or URL, latest
    step).

    Accepts `RUN/`, `RUN/checkpoints/` or `RUN/checkpoints/<step>`.
    """
    path = storage_path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint (path does not exist)")
    if path.name.isdigit() and path.parent.is_dir():
        return path.parent, int(path.name)
    for candidate in (path / "checkpoints", path):
        steps = saved_steps(candidate)
        if steps:
            return candidate, steps[-1]
    raise UserError(
        f"{path}: no checkpoint found (expected numbered step folders in it or in {path / 'checkpoints'})"
    )


def load_meta(path: str | os.PathLike[str]) -> tuple[epath.Path, int, dict[str, Any]]:
    """(manager folder, step, meta) of the latest checkpoint at `path`."""
    directory, step = resolve_checkpoint(path)
    check_item(directory / str(step) / "meta")
    manager = ocp.CheckpointManager(directory)
    try:
        meta = restore_meta(manager, step)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise UserError(f"{directory / str(step)}: unreadable checkpoint ({e})") from e
    finally:
        manager.close()
    return directory, step, meta


def load_dynamo_encoder(path: str | os.PathLike[str]) -> tuple[DynamoConfig, nnx.State]:
    """The latest DynaMo checkpoint at `path` (run folder, `checkpoints/` or a step folder) →
    (its DynamoConfig, the encoder's weights: parameters and BatchNorm running statistics)."""
    directory, step, meta = load_meta(path)
    if meta.get("kind") != DYNAMO_KIND:
        raise UserError(
            f"{directory / str(step)}: not a DynaMo encoder checkpoint (meta kind {meta.get('kind')!r})"
        )
    config = DynamoConfig.from_dict(meta["dynamo_config"])
    abstract = nnx.state(nnx.eval_shape(lambda: make_encoder(config, rngs=nnx.Rngs(0))), WEIGHTS)
    return config, _restore_item(directory, step, ENCODER_ITEM, _on_one_device(abstract))
