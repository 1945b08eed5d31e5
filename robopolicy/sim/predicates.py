"""Goal predicates over object positions, velocities and contacts: pure functions, no MuJoCo.

All positions are world-frame (3,) arrays in metres, velocities in m/s. The env gathers the inputs
from the simulator; tests build them by hand.
"""

from __future__ import annotations

import numpy as np

ON_Z_TOL = 0.01  # m: how far the object's bottom may float above the support without touching it
REST_SPEED = 0.05  # m/s: below this the object counts as resting
LIFT_HEIGHT = 0.04  # m: bottom clearance above the table that counts as lifted


def on(
    obj_pos: np.ndarray,
    obj_half_height: float,
    support_pos: np.ndarray,
    support_half_height: float,
    support_radius: float,
    *,
    obj_speed: float = 0.0,
    in_contact: bool = False,
    z_tol: float = ON_Z_TOL,
    rest_speed: float = REST_SPEED,
) -> bool:
    """Whether the object rests on a round support (a plate).

    True when the object's centre lies above the support's top face, within its circular footprint,
    the object touches the support or its bottom is within `z_tol` of the top face, and its speed is
    below `rest_speed`.
    """
    support_top = float(support_pos[2]) + support_half_height
    obj_bottom = float(obj_pos[2]) - obj_half_height
    above = float(obj_pos[2]) > support_top
    inside = float(np.hypot(obj_pos[0] - support_pos[0], obj_pos[1] - support_pos[1])) <= support_radius
    close = in_contact or abs(obj_bottom - support_top) <= z_tol
    resting = obj_speed <= rest_speed
    return bool(above and inside and close and resting)


def lifted(
    obj_pos: np.ndarray, obj_half_height: float, table_z: float = 0.0, height: float = LIFT_HEIGHT
) -> bool:
    """Whether the object's bottom is at least `height` m above the table top at `table_z`."""
    return bool(float(obj_pos[2]) - obj_half_height >= table_z + height)


def released(fingers_touching: int) -> bool:
    """Whether no finger touches the object (`fingers_touching` = number of pads in contact with it)."""
    return fingers_touching == 0
