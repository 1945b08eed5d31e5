"""The goal predicates: pure functions of positions, speeds and contacts, on hand-built cases."""

import numpy as np

from robopolicy.sim import predicates as P

PLATE_TOP = 0.012  # m: a plate's top face above the table
HALF = 0.0225  # m: a cube's half size
RIM = (0.085, 0.085)  # cube_on_plate's plate footprint radius


def _on_plate(cube: list[float], **kwargs: object) -> bool:
    pos = np.array(cube)
    local = P.to_local_xy(pos, np.array([0.5, 0.1, 0.0]), 0.0)
    kw = {"obj_speed": 0.0, "in_contact": False, **kwargs}
    return P.on_surface(pos, HALF, local, PLATE_TOP, RIM, True, **kw)


def test_on_when_resting_on_the_plate() -> None:
    assert _on_plate([0.52, 0.12, PLATE_TOP + HALF], in_contact=True)
    assert _on_plate([0.52, 0.12, PLATE_TOP + HALF + 0.005])  # close enough without contact


def test_not_on_outside_the_footprint_hovering_below_or_moving() -> None:
    assert not _on_plate([0.5 + 0.09, 0.1, PLATE_TOP + HALF], in_contact=True)
    assert not _on_plate([0.5, 0.1, PLATE_TOP + HALF + 0.05])
    assert not _on_plate([0.5, 0.1, 0.0])
    assert not _on_plate([0.5, 0.1, PLATE_TOP + HALF], in_contact=True, obj_speed=0.3)


def test_lifted() -> None:
    assert not P.lifted(np.array([0.5, 0.0, HALF]), HALF)
    assert P.lifted(np.array([0.5, 0.0, HALF + 0.05]), HALF)


def test_to_local_xy_and_footprints() -> None:
    local = P.to_local_xy(np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.pi / 2)
    np.testing.assert_allclose(local, [1.0, 0.0], atol=1e-12)  # +y in the world is +x of a frame turned 90°
    assert P.within_footprint(np.array([0.05, 0.05]), (0.06, 0.06), round_shape=False)
    assert not P.within_footprint(np.array([0.05, 0.05]), (0.06, 0.06), round_shape=True)  # |.|=0.0707


def test_on_surface_and_inside() -> None:
    kw = dict(obj_speed=0.0, in_contact=False)
    top = 0.04
    assert P.on_surface(np.array([0, 0, top + 0.0225]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **kw)
    assert not P.on_surface(np.array([0, 0, top + 0.05]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **kw)
    moving = dict(obj_speed=0.2, in_contact=True)
    assert not P.on_surface(
        np.array([0, 0, top + 0.0225]), 0.0225, np.zeros(2), top, (0.03, 0.03), True, **moving
    )
    assert P.inside(
        np.array([0, 0, 0.03]), np.array([0.05, -0.05]), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0
    )
    assert not P.inside(
        np.array([0, 0, 0.03]), np.array([0.08, 0.0]), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0
    )
    assert not P.inside(np.array([0, 0, 0.2]), np.zeros(2), 0.008, 0.054, (0.07, 0.07), obj_speed=0.0)


def test_joint_and_memory_predicates() -> None:
    assert P.joint_fraction(0.06, 0.12) == 0.5 and P.joint_fraction(-0.01, 0.12) == 0.0
    assert P.farther_of(np.array([0.4, 0.1]), np.array([0.6, 0.17]), np.array([0.6, -0.17])) == 1
    assert P.farther_of(np.array([0.4, -0.1]), np.array([0.6, 0.17]), np.array([0.6, -0.17])) == 0
    start = np.array([0.45, 0.1])
    assert P.at_start(np.array([0.46, 0.11, 0.0225]), 0.0225, start, obj_speed=0.0)
    assert not P.at_start(np.array([0.50, 0.11, 0.0225]), 0.0225, start, obj_speed=0.0)
    assert not P.at_start(np.array([0.45, 0.1, 0.08]), 0.0225, start, obj_speed=0.0)
