"""The one place image encoders are built, for policies and DynaMo alike, so that a DynaMo encoder's
parameter tree is exactly that of the policy encoder it is transplanted into.

Kinds: "cnn" (the small `ConvEncoder`, for CPU runs), "resnet18" (ResNet-18 with GroupNorm and a
spatial-softmax head, Diffusion Policy's) and "resnet18_avgpool" (torchvision's ResNet-18 with
BatchNorm and global average pooling, DynaMo's; its embedding is 512-d).
"""

from __future__ import annotations

from typing import Literal, Protocol

import jax.numpy as jnp
from flax import nnx

from robopolicy.models.cnn_encoder import ConvEncoder
from robopolicy.models.resnet_encoder import AVGPOOL_FEATURE_DIM, ResNet18AvgPoolEncoder, ResNet18Encoder

ImageEncoderKind = Literal["cnn", "resnet18", "resnet18_avgpool"]
IMAGE_ENCODERS: tuple[str, ...] = ("cnn", "resnet18", "resnet18_avgpool")


def image_encoder_problem(kind: str, feature_dim: int) -> str | None:
    """Why `kind` with `feature_dim` cannot be built (a config's validation message), or None."""
    if kind not in IMAGE_ENCODERS:
        return f"encoder must be one of {IMAGE_ENCODERS}, got {kind!r}"
    if kind == "resnet18_avgpool" and feature_dim != AVGPOOL_FEATURE_DIM:
        return (
            f"encoder 'resnet18_avgpool' embeds into its last stage's {AVGPOOL_FEATURE_DIM} channels, "
            f"so feature_dim must be {AVGPOOL_FEATURE_DIM}, got {feature_dim}"
        )
    return None


class ImageEncoderFields(Protocol):
    """The config fields that choose and size an image encoder (`PolicyConfig`, `DynamoConfig`)."""

    encoder: str
    feature_dim: int
    encoder_channels: tuple[int, ...]
    image_size: int
    pooling: str
    num_keypoints: int


def make_image_encoder(
    config: ImageEncoderFields, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
) -> nnx.Module:
    """uint8 images [B, H, W, 3] → features [B, feature_dim], in eval mode (BatchNorm's running
    statistics); `encoder_channels` and `pooling` matter only to "cnn", `num_keypoints` to "resnet18"."""
    c = config
    if c.encoder == "resnet18":
        return ResNet18Encoder(c.feature_dim, c.num_keypoints, dtype=dtype, rngs=rngs)
    if c.encoder == "resnet18_avgpool":
        return ResNet18AvgPoolEncoder(dtype=dtype, rngs=rngs)
    return ConvEncoder(c.encoder_channels, c.feature_dim, c.image_size, c.pooling, dtype=dtype, rngs=rngs)
