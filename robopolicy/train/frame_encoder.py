"""Per-frame embeddings with a trained image encoder: a policy checkpoint's camera encoders (EMA
weights) or the shared encoder of a DynaMo checkpoint, batched and jitted.

Stage 2 of multistage training caches them over a dataset (`cache_embeddings`); a stage-2 policy
runs the same encoder in closed loop before its head.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jaxtyping import UInt8

from robopolicy.data.embedding_cache import Embeddings
from robopolicy.data.image_resize import resize_with_pad
from robopolicy.errors import UserError
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.models.policy import SHARED, Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.pretrained_encoder import policy_config_with_encoder

Frames = dict[str, UInt8[np.ndarray, "t h w 3"]]


class FrameEncoder:
    """The per-camera image encoders of a `Policy` checkpoint (EMA weights), or the shared encoder of a
    DynaMo checkpoint, batched and jitted."""

    def __init__(self, path: str | Path, batch_size: int = 256) -> None:
        directory, step, meta = checkpoint.load_meta(path)
        self.checkpoint_dir, self.step, self.batch_size = directory, step, batch_size
        if meta.get("kind") == checkpoint.DYNAMO_KIND:
            self._init_dynamo(path)
            return
        self.weights = "ema"
        try:
            self.config = PolicyConfig.from_dict(meta["policy_config"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{directory / str(step)}: checkpoint has no valid policy config ({e})") from e
        abstract = nnx.eval_shape(lambda: Policy(self.config, rngs=nnx.Rngs(0)))
        self.params = checkpoint.restore_policy_params(directory, step, nnx.state(abstract, WEIGHTS))
        self._graphdef = nnx.graphdef(abstract)

    def _init_dynamo(self, path: str | Path) -> None:
        """A policy whose shared encoder holds the DynaMo weights; only its encoder ever runs."""
        dynamo_config, encoder_params = checkpoint.load_dynamo_encoder(path)
        self.weights = "dynamo"
        self.config = policy_config_with_encoder(PolicyConfig(image_shift=0), dynamo_config)
        policy = Policy(self.config, rngs=nnx.Rngs(0))
        nnx.update(policy.encoders[SHARED], encoder_params)
        self._graphdef, self.params = nnx.graphdef(policy), nnx.state(policy, WEIGHTS)

    def check_frames(self, frames: Frames, where: str) -> None:
        """One-line error if the episode lacks a camera of the encoder (frames of any size are resized)."""
        for cam in self.config.cameras:
            if cam not in frames:
                raise UserError(
                    f"{where}: no camera {cam!r} for the encoder (the dataset has {sorted(frames)})"
                )

    def __call__(self, frames: Frames) -> Embeddings:
        """uint8 frames [T, H, W, 3] per camera → float32 embeddings [T, feature_dim] per camera.

        Frames of another size are resized to the encoder's first, with the training pipeline's
        resize. Chunks of `batch_size`; a short chunk is padded up to a power of two, so at most
        log2(batch_size) + 1 shapes are ever compiled.
        """
        cams = self.config.cameras
        size = self.config.image_size
        n = len(frames[cams[0]])
        out: dict[str, list[np.ndarray]] = {cam: [] for cam in cams}
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            padded = min(self.batch_size, 1 << (stop - start - 1).bit_length())
            index = np.minimum(np.arange(start, start + padded), stop - 1)
            chunk = {cam: resize_with_pad(np.asarray(frames[cam][index]), size, size) for cam in cams}
            result = _encode(self._graphdef, self.params, chunk)
            for cam in cams:
                out[cam].append(np.asarray(result[cam])[: stop - start])
        return {cam: np.concatenate(chunks).astype(np.float32) for cam, chunks in out.items()}


@functools.partial(jax.jit, static_argnums=0)
def _encode(graphdef: nnx.GraphDef, params: nnx.State, images: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Jitted once per policy shape (the graphdef is static), shared by every `FrameEncoder`."""
    model = nnx.merge(graphdef, params)
    return model.embed_frames(images)
