"""A small convolutional image encoder for CPU-scale work, ending in a spatial softmax.

Stride-2 conv stages with GroupNorm (not BatchNorm: batch statistics interact badly with EMA
weights, as Diffusion Policy notes), then a spatial softmax that turns each channel into the
expected (x, y) image location of its activation — a good inductive bias for "where is the cube".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from robopolicy.models.precision import to_float32


def spatial_softmax(features: Float[Array, "b h w c"]) -> Float[Array, "b two_c"]:
    """Per-channel softmax over pixels, returned as expected (x, y) in [−1, 1]: [B, 2C].

    Computed in float32 whatever the input dtype (bf16's 8-bit mantissa would blur the small weights
    of far pixels and the expected coordinates); the result is cast back to the input dtype.
    """
    b, h, w, c = features.shape
    weights = jax.nn.softmax(to_float32(features).reshape(b, h * w, c), axis=1)  # [B, HW, C]
    ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing="ij")
    grid = jnp.stack([xs.reshape(-1), ys.reshape(-1)], axis=-1)  # [HW, 2]
    keypoints = jnp.einsum("bpc,pk->bck", weights, grid)  # [B, C, 2]
    return keypoints.reshape(b, c * 2).astype(features.dtype)


class ConvEncoder(nnx.Module):
    """uint8 images [B, H, W, 3] → features [B, feature_dim]."""

    def __init__(
        self,
        channels: tuple[int, ...],
        feature_dim: int,
        image_size: int,
        pooling: str = "spatial_softmax",
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        convs, norms = [], []
        in_ch = 3
        for out_ch in channels:
            convs.append(nnx.Conv(in_ch, out_ch, kernel_size=(3, 3), strides=(2, 2), dtype=dtype, rngs=rngs))
            norms.append(nnx.GroupNorm(out_ch, num_groups=min(8, out_ch), dtype=dtype, rngs=rngs))
            in_ch = out_ch
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        self.pooling = pooling
        if pooling == "spatial_softmax":
            self.keypoint_logits = nnx.Conv(in_ch, in_ch, kernel_size=(1, 1), dtype=dtype, rngs=rngs)
            self.out = nnx.Linear(2 * in_ch, feature_dim, dtype=dtype, rngs=rngs)
        elif pooling == "flatten":
            side = image_size // 2 ** len(channels)
            self.out = nnx.Linear(side * side * in_ch, feature_dim, dtype=dtype, rngs=rngs)
        else:
            raise ValueError(f"unknown pooling {pooling!r}")
        self.out_norm = nnx.LayerNorm(feature_dim, dtype=dtype, rngs=rngs)
        self.dtype = dtype

    def __call__(self, images: Float[Array, "b h w 3"]) -> Float[Array, "b f"]:
        return self.out_norm(self.features_before_norm(images))

    def features_before_norm(self, images: Float[Array, "b h w 3"]) -> Float[Array, "b f"]:
        """The output projection before the final LayerNorm (what DynaMo's losses see, see `DynamoConfig`)."""
        x = images.astype(self.dtype) / 127.5 - 1.0  # 0..255 are exact in bf16
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = jax.nn.gelu(norm(conv(x)))
        if self.pooling == "spatial_softmax":
            return self.out(spatial_softmax(self.keypoint_logits(x)))
        return self.out(x.reshape(x.shape[0], -1))
