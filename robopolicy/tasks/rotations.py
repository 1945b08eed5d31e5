"""Small rotation helpers (numpy, float64).

Conventions: rotation matrices are (3, 3) and map body coordinates to world coordinates; quaternions
are MuJoCo's (w, x, y, z); rotation vectors (axis-angle) are (3,) with the angle in radians as norm.
"""

from __future__ import annotations

import numpy as np


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: (3,) axis-angle in rad -> (3, 3) rotation matrix."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = np.asarray(rotvec, dtype=np.float64) / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def matrix_to_rotvec(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) axis-angle in rad, angle in [0, pi]."""
    cos_angle = np.clip((np.trace(mat) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_angle))
    skew = np.array([mat[2, 1] - mat[1, 2], mat[0, 2] - mat[2, 0], mat[1, 0] - mat[0, 1]])
    if angle < 1e-9:
        return 0.5 * skew
    if np.pi - angle > 1e-6:
        return angle / (2.0 * np.sin(angle)) * skew
    # Near pi the skew part vanishes; recover the axis from the symmetric part instead.
    sym = (mat + np.eye(3)) / 2.0
    axis = sym[int(np.argmax(np.diag(sym)))]
    axis = axis / np.linalg.norm(axis)
    return angle * axis


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation about the x axis by `angle` rad."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation about the z axis by `angle` rad."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_to_quat(yaw: float) -> np.ndarray:
    """(4,) MuJoCo quaternion (w, x, y, z) for a rotation of `yaw` rad about world z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def quat_to_yaw(quat: np.ndarray) -> float:
    """Heading (rad) of the body x axis in the world xy plane, for a (w, x, y, z) quaternion."""
    w, x, y, z = quat
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def wrap_angle(angle: float, period: float = 2.0 * np.pi) -> float:
    """Wrap `angle` into [-period/2, period/2)."""
    return float((angle + period / 2.0) % period - period / 2.0)


def look_at_xyaxes(pos: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """MJCF camera `xyaxes` (6,) for a camera at `pos` looking at `target` (both (3,), metres).

    MuJoCo cameras look along their -z axis with +y up in the image, so x = forward × up and
    y = x × forward.
    """
    world_up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - np.asarray(pos, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, world_up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return np.concatenate([right, cam_up])


def matrix_to_quat(mat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (w, x, y, z) with w >= 0."""
    rotvec = matrix_to_rotvec(mat)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rotvec / angle
    return np.concatenate([[np.cos(angle / 2.0)], np.sin(angle / 2.0) * axis])
