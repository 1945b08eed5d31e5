"""The synthetic LIBERO-like content of the committed LeRobotDataset fixtures (tests/fixtures/lerobot/).

`tests/fixtures/lerobot/make_fixture.py` writes it with LeRobot's own dataset code; the tests regenerate
it here and compare it with what our reader reads back. Frames are not constant: a background whose
brightness ramps with the step and a bright square that moves, so neighbouring frames differ by far
more than the video codec's error, and a frame read at the wrong step is caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot"
FPS = 10
IMAGE_SIZE = 48  # H = W
SQUARE = 12
EPISODE_LENGTHS = (12, 9, 15)
TASKS = ("put the bowl on the plate", "open the top drawer of the cabinet")
EPISODE_TASKS = (0, 1, 0)  # index into TASKS, per episode
CAMERAS = ("observation.images.image", "observation.images.wrist_image")  # LeRobot naming
OPENPI_CAMERAS = ("image", "wrist_image")  # openpi LIBERO naming
STATE_DIM = 8
ACTION_DIM = 7


def frame(episode: int, camera: int, step: int) -> np.ndarray:
    """uint8 [IMAGE_SIZE, IMAGE_SIZE, 3]: camera `camera` (index into CAMERAS) at `step` of `episode`."""
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    image[...] = (40 + 60 * episode, 30 + 12 * step, 60 + 120 * camera)
    span = IMAGE_SIZE - SQUARE
    x = (3 * step + 8 * camera) % span
    y = (2 * step + 10 * episode) % span
    image[y : y + SQUARE, x : x + SQUARE] = (250, 240, 20)
    return image


def state(episode: int, step: int) -> np.ndarray:
    """float32 [STATE_DIM], distinct per episode, step and dimension."""
    return (100 * episode + step + np.arange(STATE_DIM) / 10).astype(np.float32)


def action(episode: int, step: int) -> np.ndarray:
    """float32 [ACTION_DIM] in [-1, 1], distinct per episode, step and dimension."""
    return np.sin(0.3 * step + 0.7 * np.arange(ACTION_DIM) + episode).astype(np.float32)
