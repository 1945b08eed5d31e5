"""LIBERO observations as policies see them: the conventions of openpi's LIBERO example
(examples/libero/main.py in openpi), which LIBERO's published RLDS and LeRobot conversions share.

- Both cameras (`agentview_image`, `robot0_eye_in_hand_image`) are rotated by 180°: LIBERO's
  offscreen renders come upside down and the training data stores them upright.
- Images go out at the size the server asks for (square, bilinear; LIBERO renders square images,
  so resizing with padding is a plain resize), 224×224 for a server that names none, as openpi sends.
- The state is 8 floats: end-effector position (3), its orientation as an axis-angle vector (3), from
  robosuite's (x, y, z, w) quaternion with the angle 2·acos(w) in [0, 2π], and the two gripper finger
  positions (2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

CAMERAS = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}  # policy camera → LIBERO key
DEFAULT_IMAGE_SIZE = 224
STATE_DIM = 8


def upright(image: np.ndarray) -> np.ndarray:
    """A LIBERO render rotated by 180° (upright), contiguous."""
    return np.ascontiguousarray(image[::-1, ::-1])


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 image [H, H, 3] at size×size (bilinear, PIL); returned as is at that size."""
    if image.shape[0] != image.shape[1]:
        raise ValueError(f"LIBERO renders square images, got {image.shape}")
    if image.shape[0] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), resample=Image.Resampling.BILINEAR))


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Axis-angle [3] of a unit quaternion (x, y, z, w), robosuite's convention (angle in [0, 2π])."""
    w = min(1.0, max(-1.0, float(quat[3])))
    sine = math.sqrt(1.0 - w * w)
    if math.isclose(sine, 0.0):
        return np.zeros(3)
    return np.asarray(quat[:3], np.float64) * 2.0 * math.acos(w) / sine


def eef_state(obs: Mapping[str, Any]) -> np.ndarray:
    """The 8-d state float32: eef position, eef axis-angle, gripper finger positions."""
    return np.concatenate(
        [obs["robot0_eef_pos"], quat_to_axis_angle(obs["robot0_eef_quat"]), obs["robot0_gripper_qpos"]]
    ).astype(np.float32)


def policy_frames(obs: Mapping[str, Any], size: int) -> dict[str, np.ndarray]:
    """The policy's cameras (`agentview`, `wrist`), upright, at size×size."""
    return {camera: resize_square(upright(obs[key]), size) for camera, key in CAMERAS.items()}


OPENPI_KEYS = {
    "cameras": {"observation/image": "agentview", "observation/wrist_image": "wrist"},
    "state": "observation/state",
    "instruction": "prompt",
}


def request_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The request keys a server reads: a robopolicy server's observation mapping (its metadata's
    `obs_mapping`: request key → policy camera, the state's key, the instruction's), else openpi's."""
    table = metadata.get("obs_mapping")
    if metadata.get("server") == "robopolicy" and isinstance(table, dict):
        return {
            "cameras": dict(table["cameras"]),
            "state": table["state"],
            "instruction": table["instruction"],
        }
    return OPENPI_KEYS


def policy_request(
    obs: Mapping[str, Any], keys: Mapping[str, Any], size: int, instruction: str
) -> dict[str, Any]:
    """A LIBERO observation as one request to a policy server with request keys `keys`."""
    frames = policy_frames(obs, size)
    request: dict[str, Any] = {key: frames[camera] for key, camera in keys["cameras"].items()}
    request[keys["state"]] = eef_state(obs)
    if keys["instruction"]:
        request[keys["instruction"]] = instruction
    return request
