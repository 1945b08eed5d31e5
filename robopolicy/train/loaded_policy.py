"""A trained policy read back from what training wrote: EMA weights, config, statistics, metadata.

`load_policy` takes a run folder, its `checkpoints/` folder, one step folder or an inference bundle
written by `robopolicy export`; evaluation and export build on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from etils import epath
from flax import nnx

from robopolicy.data.normalization import NormalizationStats
from robopolicy.errors import UserError
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint


@dataclass(frozen=True)
class LoadedPolicy:
    """Weights, config, statistics and provenance of a trained policy."""

    config: PolicyConfig
    params: nnx.State
    stats: NormalizationStats
    meta: dict[str, Any]
    checkpoint_dir: epath.Path
    step: int
    # A stage-2 (encoder="cached") policy's frozen stage-1 image encoder: frames → embeddings.
    frame_encoder: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    @property
    def where(self) -> str:
        """The checkpoint's step folder, for messages."""
        return str(self.checkpoint_dir / str(self.step))


def policy_config_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """The policy config fields a checkpoint's metadata records (KeyError if it has none).

    Checkpoints written before the policy config held the frame stride kept it in the training
    config (`train_config.data.frame_stride`); it is read from there.
    """
    fields = dict(meta["policy_config"])
    if "frame_stride" not in fields:
        fields["frame_stride"] = int(meta.get("train_config", {}).get("data", {}).get("frame_stride", 1))
    return fields


def policy_config_from_meta(meta: dict[str, Any]) -> PolicyConfig:
    """The policy config of a checkpoint's metadata (KeyError, TypeError or ValueError if invalid)."""
    return PolicyConfig.from_dict(policy_config_fields(meta))


def load_policy(path: str | os.PathLike[str]) -> LoadedPolicy:
    """Load the EMA weights and metadata of the latest checkpoint at `path`: a run folder, its
    `checkpoints/` folder, a step folder or an inference bundle written by `robopolicy export`."""
    directory, step, meta = checkpoint.load_meta(path)
    try:
        config = policy_config_from_meta(meta)
        stats = NormalizationStats.from_dict(meta["stats"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{directory / str(step)}: checkpoint metadata is missing or invalid ({e})") from e
    abstract = nnx.state(nnx.eval_shape(lambda: Policy(config, rngs=nnx.Rngs(0))), WEIGHTS)
    mismatches = checkpoint.param_mismatches(directory, step, abstract)
    if mismatches:
        more = f"; and {len(mismatches) - 4} more" if len(mismatches) > 4 else ""
        raise UserError(
            f"{directory / str(step)}: weights do not fit the policy config in its metadata "
            f"({'; '.join(mismatches[:4])}{more})"
        )
    params = checkpoint.restore_policy_params(directory, step, abstract)
    frame_encoder = None
    if config.encoder == "cached":
        stage1 = meta.get("stage1_encoder")
        if not stage1:
            raise UserError(
                f"{directory / str(step)}: policy trains on cached embeddings but names no stage-1 encoder"
            )
        from robopolicy.train.frame_encoder import FrameEncoder

        frame_encoder = FrameEncoder(stage1["checkpoint"], batch_size=max(config.obs_horizon, 1))
    return LoadedPolicy(config, params, stats, meta, directory, step, frame_encoder)
