"""ResNet-18 with GroupNorm and a spatial-softmax head, the image encoder of Diffusion Policy.

Randomly initialised (no pretrained weights are downloaded). GroupNorm replaces BatchNorm because
batch statistics do not mix with EMA weights (Diffusion Policy, §3.3); groups = channels // 16 as
there. Global average pooling is replaced by a spatial softmax over `num_keypoints` learned keypoint
maps, which keeps *where* things are in the image.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, UInt8

from robopolicy.models.cnn_encoder import spatial_softmax

RESNET18_STAGES = (64, 128, 256, 512)  # channels of the four stages, two basic blocks each


def _group_norm(channels: int, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.GroupNorm:
    # Statistics are float32 whatever `dtype` (flax promotes them); the output is `dtype`.
    return nnx.GroupNorm(channels, num_groups=max(channels // 16, 1), dtype=dtype, rngs=rngs)


class _BasicBlock(nnx.Module):
    """Two 3×3 convs with a residual; a 1×1 strided projection when the shape changes."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
    ) -> None:
        self.conv1 = nnx.Conv(
            in_ch, out_ch, (3, 3), strides=(stride, stride), use_bias=False, dtype=dtype, rngs=rngs
        )
        self.norm1 = _group_norm(out_ch, dtype, rngs)
        self.conv2 = nnx.Conv(out_ch, out_ch, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm2 = _group_norm(out_ch, dtype, rngs)
        self.project = (
            nnx.Conv(in_ch, out_ch, (1, 1), strides=(stride, stride), use_bias=False, dtype=dtype, rngs=rngs)
            if stride != 1 or in_ch != out_ch
            else None
        )
        self.project_norm = _group_norm(out_ch, dtype, rngs) if self.project is not None else None

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 d"]:
        h = jax.nn.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        skip = x if self.project is None else self.project_norm(self.project(x))
        return jax.nn.relu(h + skip)


class ResNet18Encoder(nnx.Module):
    """uint8 images [B, H, W, 3] → features [B, feature_dim].

    Stem: 7×7/2 conv, GroupNorm, ReLU, 3×3/2 max-pool; then 4 stages × 2 basic blocks (the first
    block of stages 2–4 halves the resolution): an 84-px image ends as a 3×3×512 map.
    """

    def __init__(
        self, feature_dim: int, num_keypoints: int = 32, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
    ) -> None:
        self.stem = nnx.Conv(
            3, RESNET18_STAGES[0], (7, 7), strides=(2, 2), use_bias=False, dtype=dtype, rngs=rngs
        )
        self.stem_norm = _group_norm(RESNET18_STAGES[0], dtype, rngs)
        blocks = []
        in_ch = RESNET18_STAGES[0]
        for i, out_ch in enumerate(RESNET18_STAGES):
            blocks.append(_BasicBlock(in_ch, out_ch, 1 if i == 0 else 2, dtype=dtype, rngs=rngs))
            blocks.append(_BasicBlock(out_ch, out_ch, 1, dtype=dtype, rngs=rngs))
            in_ch = out_ch
        self.blocks = nnx.List(blocks)
        self.keypoint_logits = nnx.Conv(in_ch, num_keypoints, (1, 1), dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(2 * num_keypoints, feature_dim, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def features_before_norm(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b f"]:
        """The features themselves: this encoder ends in a linear layer, with no output norm."""
        return self(images)

    def __call__(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b f"]:
        x = images.astype(self.dtype) / 127.5 - 1.0  # 0..255 are exact in bf16
        x = jax.nn.relu(self.stem_norm(self.stem(x)))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for block in self.blocks:
            x = block(x)
        return self.out(spatial_softmax(self.keypoint_logits(x)))
