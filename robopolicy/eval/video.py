"""Rollout videos: both cameras side by side, with a status strip under them."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from jaxtyping import UInt8

_RUNNING, _SUCCESS, _FAILURE = (90, 90, 90), (40, 180, 60), (200, 50, 40)


def compose_frame(
    obs: dict[str, np.ndarray], cameras: tuple[str, ...], scale: int
) -> UInt8[np.ndarray, "h w 3"]:
    """Cameras side by side, upscaled by an integer factor (nearest neighbour keeps pixels honest)."""
    row = np.concatenate([obs[cam] for cam in cameras], axis=1)
    return np.repeat(np.repeat(row, scale, axis=0), scale, axis=1)


def with_status(frame: UInt8[np.ndarray, "h w 3"], status: bool | None) -> UInt8[np.ndarray, "h2 w 3"]:
    """Append a strip: grey while running, green for success, red for failure."""
    color = _RUNNING if status is None else (_SUCCESS if status else _FAILURE)
    strip = np.empty((max(frame.shape[0] // 16, 4), frame.shape[1], 3), np.uint8)
    strip[:] = color
    return np.concatenate([frame, strip], axis=0)


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    """Encode frames with the ffmpeg binary shipped in imageio-ffmpeg (no system ffmpeg needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # JAX warns on any fork; imageio-ffmpeg's fork is immediately followed by exec of ffmpeg, which
        # cannot deadlock on JAX's threads.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        # macro_block_size=1 keeps odd sizes as they are instead of resizing with a warning.
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(frame)
    return path


def encode_mp4(frames: list[np.ndarray], fps: int = 20) -> bytes:
    """The bytes of the mp4 file `write_mp4` writes (through a temporary file: ffmpeg writes files)."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_mp4(Path(tmp) / "video.mp4", frames, fps).read_bytes()


def with_caption(frame: UInt8[np.ndarray, "h w 3"], text: str) -> UInt8[np.ndarray, "h2 w 3"]:
    """Prepend a black strip with `text` (e.g. the instruction) in white, clipped to the frame width."""
    from PIL import Image, ImageDraw

    height = 14
    strip = Image.new("RGB", (frame.shape[1], height), (0, 0, 0))
    ImageDraw.Draw(strip).text((3, 1), text, fill=(255, 255, 255))
    return np.concatenate([np.asarray(strip, dtype=np.uint8), frame], axis=0)


def with_verdict(frame: UInt8[np.ndarray, "h w 3"], success: bool) -> UInt8[np.ndarray, "h w 3"]:
    """Write SUCCESS or FAILURE in the frame's top-right corner, on a coloured box."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    word = "SUCCESS" if success else "FAILURE"
    width = 6 * len(word) + 6
    x0 = max(frame.shape[1] - width, 0)
    draw.rectangle((x0, 0, frame.shape[1], 13), fill=_SUCCESS if success else _FAILURE)
    draw.text((x0 + 3, 1), word, fill=(255, 255, 255))
    return np.asarray(image, dtype=np.uint8)
