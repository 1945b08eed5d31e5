"""ResNet-18 image encoders, randomly initialised (no pretrained weights are downloaded).

Two heads on the same trunk (7×7/2 stem, 3×3/2 max-pool, 4 stages × 2 basic blocks):

- `ResNet18Encoder`, the image encoder of Diffusion Policy: GroupNorm instead of BatchNorm, because
  batch statistics do not mix with EMA weights (Diffusion Policy, §3.3), groups = channels // 16 as
  there; global average pooling replaced by a spatial softmax over `num_keypoints` learned keypoint
  maps, which keeps *where* things are in the image, then a linear layer to `feature_dim`.
- `ResNet18AvgPoolEncoder`, torchvision's ResNet-18 as DynaMo uses it (Cui et al. 2024): BatchNorm
  and global average pooling, the 512 channels of the last stage being the embedding. BatchNorm's
  batch statistics are what keeps a self-supervised embedding spread out; its running statistics
  are `nnx.BatchStat` state next to the parameters (see `robopolicy.models.model_weights`).
  The layers are built in eval mode (running statistics); only DynaMo's pretraining step switches
  them to batch statistics (`nnx.view(model, use_running_average=False)`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, UInt8

from robopolicy.models.cnn_encoder import spatial_softmax

RESNET18_STAGES = (64, 128, 256, 512)  # channels of the four stages, two basic blocks each
AVGPOOL_FEATURE_DIM = RESNET18_STAGES[-1]  # the avg-pool head's embedding is the last stage's channels
BATCHNORM_MOMENTUM = 0.9  # running = 0.9·running + 0.1·batch: torchvision's momentum 0.1

# channels → a normalisation layer over them
MakeNorm = Callable[[int], nnx.Module]


def _group_norm(dtype: jnp.dtype, rngs: nnx.Rngs) -> MakeNorm:
    # Statistics are float32 whatever `dtype` (flax promotes them); the output is `dtype`.
    return lambda channels: nnx.GroupNorm(channels, num_groups=max(channels // 16, 1), dtype=dtype, rngs=rngs)


def _batch_norm(dtype: jnp.dtype, rngs: nnx.Rngs) -> MakeNorm:
    return lambda channels: nnx.BatchNorm(
        channels, use_running_average=True, momentum=BATCHNORM_MOMENTUM, dtype=dtype, rngs=rngs
    )


class _BasicBlock(nnx.Module):
    """Two 3×3 convs with a residual; a 1×1 strided projection when the shape changes."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int, norm: MakeNorm, *, dtype: jnp.dtype, rngs: nnx.Rngs
    ) -> None:
        self.conv1 = nnx.Conv(
            in_ch, out_ch, (3, 3), strides=(stride, stride), use_bias=False, dtype=dtype, rngs=rngs
        )
        self.norm1 = norm(out_ch)
        self.conv2 = nnx.Conv(out_ch, out_ch, (3, 3), use_bias=False, dtype=dtype, rngs=rngs)
        self.norm2 = norm(out_ch)
        self.project = (
            nnx.Conv(in_ch, out_ch, (1, 1), strides=(stride, stride), use_bias=False, dtype=dtype, rngs=rngs)
            if stride != 1 or in_ch != out_ch
            else None
        )
        self.project_norm = norm(out_ch) if self.project is not None else None

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 d"]:
        h = jax.nn.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        skip = x if self.project is None else self.project_norm(self.project(x))
        return jax.nn.relu(h + skip)


class _ResNet18Trunk(nnx.Module):
    """The shared trunk; subclasses add their head. uint8 images [B, H, W, 3] → the last stage's map
    [B, ⌈H/32⌉, ⌈W/32⌉, 512] (an 84-px image ends as 3×3×512)."""

    def __init__(self, norm: MakeNorm, *, dtype: jnp.dtype, rngs: nnx.Rngs) -> None:
        self.stem = nnx.Conv(
            3, RESNET18_STAGES[0], (7, 7), strides=(2, 2), use_bias=False, dtype=dtype, rngs=rngs
        )
        self.stem_norm = norm(RESNET18_STAGES[0])
        blocks = []
        in_ch = RESNET18_STAGES[0]
        for i, out_ch in enumerate(RESNET18_STAGES):
            blocks.append(_BasicBlock(in_ch, out_ch, 1 if i == 0 else 2, norm, dtype=dtype, rngs=rngs))
            blocks.append(_BasicBlock(out_ch, out_ch, 1, norm, dtype=dtype, rngs=rngs))
            in_ch = out_ch
        self.blocks = nnx.List(blocks)
        self.dtype = dtype

    def trunk(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b h2 w2 c"]:
        x = images.astype(self.dtype) / 127.5 - 1.0  # 0..255 are exact in bf16
        x = jax.nn.relu(self.stem_norm(self.stem(x)))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for block in self.blocks:
            x = block(x)
        return x

    def features_before_norm(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b f"]:
        """The features themselves: both heads end with no output norm."""
        return self(images)


class ResNet18Encoder(_ResNet18Trunk):
    """uint8 images [B, H, W, 3] → features [B, feature_dim]: GroupNorm, spatial-softmax head."""

    def __init__(
        self, feature_dim: int, num_keypoints: int = 32, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs
    ) -> None:
        super().__init__(_group_norm(dtype, rngs), dtype=dtype, rngs=rngs)
        self.keypoint_logits = nnx.Conv(RESNET18_STAGES[-1], num_keypoints, (1, 1), dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(2 * num_keypoints, feature_dim, dtype=dtype, rngs=rngs)

    def __call__(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b f"]:
        return self.out(spatial_softmax(self.keypoint_logits(self.trunk(images))))


class ResNet18AvgPoolEncoder(_ResNet18Trunk):
    """uint8 images [B, H, W, 3] → features [B, 512]: BatchNorm, global average pooling (torchvision)."""

    def __init__(self, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        super().__init__(_batch_norm(dtype, rngs), dtype=dtype, rngs=rngs)

    def __call__(self, images: UInt8[Array, "b h w 3"]) -> Float[Array, "b f"]:
        return jnp.mean(self.trunk(images), axis=(1, 2))
