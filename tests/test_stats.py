import math
import random

import pytest

from robopolicy.eval.stats import (
    beta_cdf,
    beta_posterior,
    beta_quantile,
    compact_letter_display,
    holm_adjust,
    mcnemar_exact,
    prob_a_beats_b_paired,
    prob_a_beats_b_unpaired,
    wilson_interval,
)


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


# ----- Beta posterior, McNemar, P(A beats B), Holm, letters -----


def test_beta_posterior_closed_forms():
    # Beta(1, 11) (0 of 10): CDF 1 − (1 − x)^11, so the q-quantile is 1 − (1 − q)^(1/11).
    mean, (lo, hi) = beta_posterior(0, 10)
    assert mean == pytest.approx(1 / 12)
    assert lo == pytest.approx(1 - 0.975 ** (1 / 11), abs=1e-12)
    assert hi == pytest.approx(1 - 0.025 ** (1 / 11), abs=1e-12)
    # Beta(11, 1) (10 of 10): CDF x^11.
    mean, (lo, hi) = beta_posterior(10, 10)
    assert mean == pytest.approx(11 / 12)
    assert lo == pytest.approx(0.025 ** (1 / 11), abs=1e-12)
    assert hi == pytest.approx(0.975 ** (1 / 11), abs=1e-12)
    # Beta(6, 6) (5 of 10) is symmetric about 1/2.
    mean, (lo, hi) = beta_posterior(5, 10)
    assert mean == 0.5 and lo + hi == pytest.approx(1.0, abs=1e-12)
    # Beta(2, 2): CDF 3x² − 2x³, by hand.
    assert beta_cdf(0.3, 2, 2) == pytest.approx(3 * 0.09 - 2 * 0.027)
    assert beta_quantile(beta_cdf(0.3, 2, 2), 2, 2) == pytest.approx(0.3, abs=1e-12)


def test_beta_posterior_matches_scipy_when_available():
    special = pytest.importorskip("scipy.stats")
    for s, n in [(45, 50), (3, 7), (120, 200)]:
        _, (lo, hi) = beta_posterior(s, n)
        dist = special.beta(1 + s, 1 + n - s)
        assert lo == pytest.approx(dist.ppf(0.025), abs=1e-9)
        assert hi == pytest.approx(dist.ppf(0.975), abs=1e-9)


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [
        (0, 5, 2 / 32),  # 2 · P(X <= 0), X ~ Bin(5, 1/2)
        (1, 9, 2 * 11 / 1024),  # 2 · (1 + 10) / 2^10
        (3, 3, 1.0),
        (0, 0, 1.0),
        (2, 8, 2 * (1 + 10 + 45) / 1024),
    ],
)
def test_mcnemar_exact_known_values(a_only, b_only, p):
    assert mcnemar_exact(a_only, b_only) == pytest.approx(p, abs=1e-12)
    assert mcnemar_exact(b_only, a_only) == pytest.approx(p, abs=1e-12)


def test_prob_a_beats_b_paired_closed_forms():
    assert prob_a_beats_b_paired(0, 0) == pytest.approx(0.5)
    assert prob_a_beats_b_paired(1, 0) == pytest.approx(0.75)  # Beta(2, 1): 1 − 0.5²
    assert prob_a_beats_b_paired(2, 0) == pytest.approx(0.875)  # Beta(3, 1): 1 − 0.5³
    assert prob_a_beats_b_paired(3, 5) == pytest.approx(1 - prob_a_beats_b_paired(5, 3))


def test_prob_a_beats_b_paired_matches_dirichlet_monte_carlo():
    # Outcome cells (both, A only, B only, neither) = (20, 7, 3, 10) under a Dirichlet(1, 1, 1, 1) prior.
    rng = random.Random(1)
    draws = 100_000
    wins = 0
    for _ in range(draws):
        g = [rng.gammavariate(1 + c, 1.0) for c in (20, 7, 3, 10)]
        wins += g[1] > g[2]  # rate_A − rate_B = p_Aonly − p_Bonly; the normalizer cancels
    assert prob_a_beats_b_paired(7, 3) == pytest.approx(wins / draws, abs=4 * math.sqrt(0.25 / draws))


def test_prob_a_beats_b_unpaired_hand_value_and_monte_carlo():
    # Beta(2, 1) vs Beta(1, 2): ∫ 2x (2x − x²) dx = 5/6, by hand.
    assert prob_a_beats_b_unpaired(1, 1, 0, 1) == pytest.approx(5 / 6)
    assert prob_a_beats_b_unpaired(4, 10, 4, 10) == pytest.approx(0.5)
    rng = random.Random(0)
    draws = 200_000
    wins = sum(rng.betavariate(31, 21) > rng.betavariate(23, 29) for _ in range(draws))
    exact = prob_a_beats_b_unpaired(30, 50, 22, 50)
    assert exact == pytest.approx(wins / draws, abs=4 * math.sqrt(0.25 / draws))


def test_holm_adjust_by_hand():
    # Sorted: 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06.
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]) == []


def test_compact_letter_display():
    # Only A and C differ: A and B share 'a', B and C share 'b'.
    assert compact_letter_display(["A", "B", "C"], {frozenset({"A", "C"})}) == {"A": "a", "B": "ab", "C": "b"}
    assert compact_letter_display(["A", "B"], set()) == {"A": "a", "B": "a"}
    every = {frozenset(p) for p in [("A", "B"), ("A", "C"), ("B", "C")]}
    assert compact_letter_display(["A", "B", "C"], every) == {"A": "a", "B": "b", "C": "c"}
    # A differs from C and D; B from D: groups {A, B}, {B, C}, {C, D}.
    pairs = {frozenset(p) for p in [("A", "C"), ("A", "D"), ("B", "D")]}
    assert compact_letter_display(["A", "B", "C", "D"], pairs) == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
