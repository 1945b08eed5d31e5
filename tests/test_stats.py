import pytest

from robopolicy.eval.stats import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Reference values: Wilson score interval, z = 1.959964 (e.g. R's binom.confint(method="wilson")).
        (5, 10, 0.236593, 0.763407),
        (0, 10, 0.0, 0.277532),
        (10, 10, 0.722468, 1.0),
        (45, 50, 0.786398, 0.956523),  # by hand: centre 0.871459, half-width 0.085062
        (1, 1, 0.206549, 1.0),
    ],
)
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-5)
    assert hi == pytest.approx(high, abs=1e-5)


def test_wilson_no_trials_and_bad_input():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)
