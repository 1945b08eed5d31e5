import numpy as np

from robopolicy.sim.predicates import lifted, on, released

PLATE = np.array([0.5, 0.1, 0.007])  # plate centre; half height 0.007, top at 0.014
HALF = 0.0225  # cube half size


def _on(cube: list[float], **kwargs: object) -> bool:
    return on(np.array(cube), HALF, PLATE, 0.007, 0.085, **kwargs)


def test_on_when_resting_on_plate() -> None:
    assert _on([0.52, 0.12, 0.014 + HALF], in_contact=True)
    assert _on([0.52, 0.12, 0.014 + HALF + 0.005])  # close enough without contact


def test_not_on_outside_footprint() -> None:
    assert not _on([0.5 + 0.1, 0.1, 0.014 + HALF], in_contact=True)


def test_not_on_when_hovering_or_below() -> None:
    assert not _on([0.5, 0.1, 0.014 + HALF + 0.05])
    assert not _on([0.5, 0.1, 0.0])


def test_not_on_while_moving() -> None:
    assert not _on([0.5, 0.1, 0.014 + HALF], in_contact=True, obj_speed=0.3)


def test_lifted() -> None:
    assert not lifted(np.array([0.5, 0.0, HALF]), HALF)
    assert lifted(np.array([0.5, 0.0, HALF + 0.05]), HALF)


def test_released() -> None:
    assert released(0)
    assert not released(1)
