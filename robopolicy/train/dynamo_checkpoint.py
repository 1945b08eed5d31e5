"""DynaMo checkpoints, and how a policy takes the pretrained encoder from one.

A checkpoint holds three orbax items: `state` (all parameters, optimizer state, step, and the EMA
target encoder when there is one), `encoder` (the online encoder's parameters alone, which is all a
policy needs) and `meta` (JSON: the DynaMo config, the held-out episode ids, the run config).

Plugging into a policy (`--encoder CKPT`): build the policy config with
`dataclasses.replace(policy_config, **dynamo_config.policy_encoder_fields())` — the same encoder
class and sizes, one encoder shared by all cameras — then `install_encoder(policy, params)`
overwrites the freshly initialised encoder. Fine-tuned: train as usual from there. Frozen: leave
`policy.encoders` out of the optimizer (`nnx.Optimizer(policy, tx, wrt=...)` with a filter that
excludes the `encoders` path, `trainable_params(frozen_encoder=True)`) or stop its gradient, or
cache its embeddings once and train an `encoder="cached"` head on them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from robopolicy.errors import UserError
from robopolicy.models.dynamo import make_encoder
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.policy import SHARED, Policy
from robopolicy.train import checkpoint

KIND = "dynamo_encoder"


def save(manager: ocp.CheckpointManager, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            encoder=ocp.args.StandardSave(state["params"]["encoder"]),
            meta=ocp.args.JsonSave(meta),
        ),
    )


def load_dynamo_encoder(path: str | Path) -> tuple[DynamoConfig, nnx.State]:
    """The latest DynaMo checkpoint at `path` (run folder, `checkpoints/` or a step folder) →
    (its DynamoConfig, the encoder's nnx.Param state)."""
    directory, step, meta = checkpoint.load_meta(path)
    if meta.get("kind") != KIND:
        raise UserError(
            f"{directory / str(step)}: not a DynaMo encoder checkpoint (meta kind {meta.get('kind')!r})"
        )
    config = DynamoConfig.from_dict(meta["dynamo_config"])
    abstract = nnx.state(nnx.eval_shape(lambda: make_encoder(config, rngs=nnx.Rngs(0))), nnx.Param)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    manager = ocp.CheckpointManager(directory.resolve())
    try:
        params = manager.restore(
            step, args=ocp.args.Composite(encoder=ocp.args.StandardRestore(target))
        ).encoder
    finally:
        manager.close()
    return config, params


def load_encoder_module(path: str | Path) -> tuple[DynamoConfig, nnx.Module]:
    """The pretrained encoder as a module: uint8 [N, H, W, 3] → [N, feature_dim]."""
    config, params = load_dynamo_encoder(path)
    encoder = make_encoder(config, rngs=nnx.Rngs(0))
    nnx.update(encoder, params)
    return config, encoder


def install_encoder(policy: Policy, config: DynamoConfig, params: nnx.State) -> None:
    """Overwrite a policy's shared image encoder with pretrained weights (UserError on a mismatch)."""
    expected = config.policy_encoder_fields()
    actual = {k: getattr(policy.config, k) for k in expected}
    differing = [k for k in expected if actual[k] != expected[k]]
    if differing:
        details = ", ".join(f"{k}: {actual[k]!r} (encoder needs {expected[k]!r})" for k in differing)
        raise UserError(f"policy config does not match the pretrained encoder: {details}")
    nnx.update(policy.encoders[SHARED], params)


def policy_config_with_encoder(policy_config: Any, config: DynamoConfig) -> Any:
    """`policy_config` with the encoder fields of a DynaMo encoder (cameras, sizes, shared encoder)."""
    return dataclasses.replace(policy_config, **config.policy_encoder_fields())


@dataclass(frozen=True)
class PretrainedEncoder:
    """A DynaMo encoder for a policy: its config, weights and the step folder they came from."""

    config: DynamoConfig
    params: nnx.State
    checkpoint: str

    def policy_config(self, policy_config: Any) -> Any:
        """`policy_config` with this encoder's fields (UserError when the result is not valid)."""
        try:
            return policy_config_with_encoder(policy_config, self.config)
        except ValueError as e:
            raise UserError(
                f"--encoder {self.checkpoint}: the policy config does not fit the encoder ({e})"
            ) from e

    def install(self, policy: Policy) -> None:
        install_encoder(policy, self.config, self.params)


def load_policy_encoder(path: str | Path) -> PretrainedEncoder:
    """`train --encoder CKPT` for a policy with an image encoder: CKPT must be a DynaMo checkpoint."""
    directory, step, meta = checkpoint.load_meta(path)
    if meta.get("kind") != KIND:
        raise UserError(
            f"--encoder {path}: not a DynaMo encoder checkpoint; a policy run's encoder is reused "
            "through its embeddings, with a policy of encoder='cached' (--preset ptp_stage2)"
        )
    config, params = load_dynamo_encoder(path)
    return PretrainedEncoder(config, params, str((directory / str(step)).resolve()))


def trainable_params(frozen_encoder: bool) -> nnx.filterlib.Filter:
    """The nnx filter of a policy's trained parameters: all of them, or all but the image encoders.

    Use as `nnx.state(policy, filter)` for the optimized part of a functional train state, or as
    `nnx.Optimizer(policy, tx, wrt=filter)`.
    """
    return nnx.All(nnx.Param, nnx.Not(nnx.PathContains("encoders"))) if frozen_encoder else nnx.Param
