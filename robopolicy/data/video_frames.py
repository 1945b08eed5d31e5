"""Video frames for dataset readers: decoding a time range of a video file, and matching the timestamps a
dataset asks for to the decoded frames.

Decoding runs the ffmpeg binary that imageio-ffmpeg ships (a robopolicy dependency; it decodes AV1,
LeRobot's default codec, as well as H.264 and HEVC), so no system ffmpeg is needed. It seeks to the
start of the range and stops at its end, so one episode of a long video that many episodes share is
decoded without the rest: memory holds that range's frames only.
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from jaxtyping import Bool, Float, Int, UInt8

from robopolicy.data.validate import DatasetError

_TIME_BASE = re.compile(r"config in time_base: (\d+)/(\d+)")
_PTS = re.compile(r"\bn:\s*\d+\s+pts:\s*(-?\d+)")


def decode_frames(
    path: Path, start_s: float, end_s: float, height: int, width: int
) -> tuple[UInt8[np.ndarray, "n h w 3"], Float[np.ndarray, " n"]]:
    """The RGB frames of the first video stream of `path` shown between `start_s` and `end_s` (seconds
    in the file's own timeline), and their presentation times in seconds, in presentation order.

    Raises `DatasetError` naming `path` when ffmpeg cannot decode it or its frames are not
    `height`×`width`.
    """
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-copyts",  # keep the file's timestamps, so times come back on the dataset's timeline
        "-ss",
        f"{max(start_s, 0.0):.6f}",
        "-to",
        f"{end_s:.6f}",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-vf",
        "showinfo",  # logs each frame's pts; the time base it logs first turns pts into seconds
        "-fps_mode",
        "passthrough",  # one output frame per decoded frame: none duplicated or dropped
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    done = subprocess.run(command, capture_output=True, check=False)
    log = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        last = next((line for line in reversed(log.splitlines()) if line.strip()), "no message")
        raise DatasetError(f"{path}: ffmpeg cannot decode it ({last.strip()})")
    time_base = _TIME_BASE.search(log)
    pts = [int(p) for p in _PTS.findall(log)]
    size = height * width * 3
    if len(done.stdout) != len(pts) * size or (pts and time_base is None):
        raise DatasetError(
            f"{path}: decoded {len(done.stdout)} bytes for {len(pts)} frame(s), "
            f"which are not {height}x{width} RGB frames"
        )
    base = Fraction(int(time_base.group(1)), int(time_base.group(2))) if time_base else Fraction(0)
    times = np.array([float(p * base) for p in pts], np.float64)
    frames = np.frombuffer(done.stdout, np.uint8).reshape(len(pts), height, width, 3)
    return frames, times


def nearest_frames(
    times: Float[np.ndarray, " n"], wanted: Float[np.ndarray, " t"], tolerance_s: float
) -> tuple[Int[np.ndarray, " t"], Bool[np.ndarray, " t"]]:
    """For each wanted time (seconds), the index into `times` of the nearest frame, and whether that
    frame lies within `tolerance_s` of it (False where there are no frames at all)."""
    if len(times) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    after = np.clip(np.searchsorted(ordered, wanted), 0, len(ordered) - 1)
    before = np.clip(after - 1, 0, len(ordered) - 1)
    closer_after = np.abs(ordered[after] - wanted) < np.abs(ordered[before] - wanted)
    pick = np.where(closer_after, after, before)
    return order[pick], np.abs(ordered[pick] - wanted) <= tolerance_s
