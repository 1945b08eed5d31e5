"""Resizing camera images to a policy's input size: the one resize of the toolkit.

Images are scaled, keeping their aspect ratio, until the longer side fits the target, then padded
with black (0) on both sides of the shorter one, centred: tf.image.resize_with_pad's geometry, which
openpi's clients use too, so nothing in the frame is cropped or stretched. Scaling is PIL's bilinear
filter, which widens its support by the scale factor when shrinking, so each output pixel averages
all the source pixels it covers (no aliasing). An image already at the target size is returned as is.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import UInt8
from PIL import Image


def resize_with_pad(
    images: UInt8[np.ndarray, "*batch h w 3"], height: int, width: int
) -> UInt8[np.ndarray, "*batch height width 3"]:
    """uint8 images [..., H, W, 3] → [..., height, width, 3], aspect kept, padded with black."""
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(
            f"resize_with_pad takes uint8 [..., H, W, 3] images, got {images.dtype} {images.shape}"
        )
    if height < 1 or width < 1:
        raise ValueError(f"resize_with_pad: target size must be positive, got {height}×{width}")
    if images.shape[-3:-1] == (height, width):
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    out = np.zeros((len(flat), height, width, 3), np.uint8)
    h, w = images.shape[-3:-1]
    ratio = max(h / height, w / width)
    new_h, new_w = max(1, min(height, round(h / ratio))), max(1, min(width, round(w / ratio)))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    for image, target in zip(flat, out, strict=True):
        resized = Image.fromarray(image).resize((new_w, new_h), resample=Image.Resampling.BILINEAR)
        target[top : top + new_h, left : left + new_w] = np.asarray(resized)
    return out.reshape(*images.shape[:-3], height, width, 3)
