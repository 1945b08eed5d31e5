"""`robopolicy export CKPT OUT`: an inference bundle of a training checkpoint.

The bundle is a one-step checkpoint folder holding only what inference reads: the EMA weights
(`policy` item) and the JSON metadata (policy config, normalization statistics, instruction
vocabulary, task, training config, plus `exported_from`). It has the layout of a run's
`checkpoints/` folder, so everything that loads checkpoints (`robopolicy.load_policy`,
`robopolicy eval --policy`, sweeps) loads a bundle too; it has no optimizer state, so it cannot be
resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import orbax.checkpoint as ocp
import tyro
from etils import epath

from robopolicy.errors import UserError
from robopolicy.paths import storage_path
from robopolicy.train import checkpoint


@dataclass(frozen=True)
class ExportConfig:
    """Export a checkpoint as an inference bundle.

    Attributes:
        checkpoint: a training run folder, its `checkpoints/` folder or one step folder in it.
        out: the bundle folder to write; must not exist yet or be empty.
    """

    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CKPT")] = "runs/train"
    out: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")] = "runs/policy"


def export_bundle(config: ExportConfig) -> epath.Path:
    """Write the bundle of `config.checkpoint` to `config.out`; returns the bundle's step folder."""
    from robopolicy.train.loaded_policy import load_policy

    out = storage_path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty folder; choose another OUT")
    policy = load_policy(config.checkpoint)
    meta = {**policy.meta, "exported_from": str(storage_path(policy.checkpoint_dir / str(policy.step)))}
    manager = checkpoint.checkpoint_manager(out, max_to_keep=1)
    try:
        manager.save(
            policy.step,
            args=ocp.args.Composite(
                policy=ocp.args.StandardSave(policy.params), meta=ocp.args.JsonSave(meta)
            ),
        )
        manager.wait_until_finished()
    finally:
        manager.close()
    return out / str(policy.step)
