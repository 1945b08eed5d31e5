"""How a policy takes the pretrained encoder of a DynaMo checkpoint (`train --encoder CKPT`).

Build the policy config with `policy_config_with_encoder(policy_config, dynamo_config)`, which sets
`dataclasses.replace(policy_config, **dynamo_config.policy_encoder_fields())`: the same encoder class
and sizes, one encoder shared by all cameras. Then `install_encoder(policy, config, params)`
overwrites the freshly initialised encoder. Fine-tuned: train as usual from there. Frozen: training
masks the encoder out of the optimizer (`frozen_encoder`), or caches its embeddings once and trains
an `encoder="cached"` head on them (`stage2`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flax import nnx

from robopolicy.errors import UserError
from robopolicy.models.dynamo import make_encoder
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.policy import SHARED, Policy
from robopolicy.train.checkpoint import DYNAMO_KIND, load_dynamo_encoder, load_meta


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
    directory, step, meta = load_meta(path)
    if meta.get("kind") != DYNAMO_KIND:
        raise UserError(
            f"--encoder {path}: not a DynaMo encoder checkpoint; a policy run's encoder is reused "
            "through its embeddings, with a policy of encoder='cached' (--preset ptp_stage2)"
        )
    config, params = load_dynamo_encoder(path)
    return PretrainedEncoder(config, params, str(directory / str(step)))
