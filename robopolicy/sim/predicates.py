"""Goal predicates over object positions, velocities and contacts: pure functions, no MuJoCo.

All positions are world-frame (3,) arrays in metres, velocities in m/s. `robopolicy.sim.scene_task`
gathers the inputs from the simulator; tests build them by hand.
"""

from __future__ import annotations

import numpy as np

ON_Z_TOL = 0.01  # m: how far the object's bottom may float above the support without touching it
REST_SPEED = 0.05  # m/s: below this the object counts as resting
LIFT_HEIGHT = 0.04  # m: bottom clearance above the table that counts as lifted
OPEN_FRACTION = 0.6  # drawer counts as open beyond this fraction of its travel
CLOSED_FRACTION = 0.1  # ... and as closed below this one
TURNED_ON_FRACTION = 0.6  # button pressed / switch slid this far counts as on
TURNED_OFF_FRACTION = 0.2  # ... and below this as off
AT_START_TOL = 0.03  # m: how close to its start an object must be put back


def lifted(
    obj_pos: np.ndarray, obj_half_height: float, table_z: float = 0.0, height: float = LIFT_HEIGHT
) -> bool:
    """Whether the object's bottom is at least `height` m above the table top at `table_z`."""
    return bool(float(obj_pos[2]) - obj_half_height >= table_z + height)


def to_local_xy(point: np.ndarray, origin: np.ndarray, yaw: float) -> np.ndarray:
    """(2,) xy of a world point in the frame of an object at `origin` (3,) turned by `yaw` (rad)."""
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = float(point[0] - origin[0]), float(point[1] - origin[1])
    return np.array([c * dx + s * dy, -s * dx + c * dy])


def within_footprint(local_xy: np.ndarray, half_extents: tuple[float, float], round_shape: bool) -> bool:
    """Whether a point (object-frame xy, m) lies inside a box footprint or a disc of radius half_extents[0]."""
    if round_shape:
        return bool(np.hypot(local_xy[0], local_xy[1]) <= half_extents[0])
    return bool(abs(local_xy[0]) <= half_extents[0] and abs(local_xy[1]) <= half_extents[1])


def on_surface(
    obj_pos: np.ndarray,
    obj_half_height: float,
    local_xy: np.ndarray,
    surface_z: float,
    half_extents: tuple[float, float],
    round_shape: bool,
    *,
    obj_speed: float,
    in_contact: bool,
    z_tol: float = ON_Z_TOL,
    rest_speed: float = REST_SPEED,
) -> bool:
    """Whether an object rests on a flat top at world height `surface_z` whose footprint holds `local_xy`."""
    bottom = float(obj_pos[2]) - obj_half_height
    close = in_contact or abs(bottom - surface_z) <= z_tol
    above = float(obj_pos[2]) > surface_z
    return bool(
        above and close and within_footprint(local_xy, half_extents, round_shape) and obj_speed <= rest_speed
    )


def inside(
    obj_pos: np.ndarray,
    local_xy: np.ndarray,
    floor_z: float,
    wall_top_z: float,
    half_extents: tuple[float, float],
    *,
    obj_speed: float,
    rest_speed: float = REST_SPEED,
) -> bool:
    """Whether an object's centre lies within a container's inner footprint, between floor and wall top."""
    z = float(obj_pos[2])
    return bool(
        floor_z < z < wall_top_z + 0.02
        and within_footprint(local_xy, half_extents, False)
        and obj_speed <= rest_speed
    )


def joint_fraction(q: float, travel: float) -> float:
    """Opening of an articulated part as a fraction of its travel, clipped to [0, 1]."""
    return float(np.clip(q / travel, 0.0, 1.0))


def farther_of(start_xy: np.ndarray, a_xy: np.ndarray, b_xy: np.ndarray) -> int:
    """0 if `a_xy` is at least as far from `start_xy` as `b_xy`, else 1."""
    da = float(np.hypot(*(np.asarray(a_xy) - start_xy)))
    db = float(np.hypot(*(np.asarray(b_xy) - start_xy)))
    return 0 if da >= db else 1


def at_start(
    obj_pos: np.ndarray,
    obj_half_height: float,
    start_xy: np.ndarray,
    *,
    obj_speed: float,
    table_z: float = 0.0,
    tol: float = AT_START_TOL,
) -> bool:
    """Whether an object rests on the table within `tol` m of where it started."""
    on_table = abs(float(obj_pos[2]) - obj_half_height - table_z) <= ON_Z_TOL
    near = float(np.hypot(obj_pos[0] - start_xy[0], obj_pos[1] - start_xy[1])) <= tol
    return bool(on_table and near and obj_speed <= REST_SPEED)
