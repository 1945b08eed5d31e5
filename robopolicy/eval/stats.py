"""Statistics for success rates. Pure functions; no array library needed."""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Better behaved than the normal ("Wald") interval at small n and near 0 or 1, which is exactly
    where policy success rates live. Returns (low, high) in [0, 1]; (0, 1) when there are no trials.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2.0 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p); summed in log space so n in the thousands stays exact enough."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, sum(math.exp(_log_binom_pmf(i, n, p)) for i in range(k + 1)))


def beta_cdf(x: float, a: int, b: int) -> float:
    """CDF of Beta(a, b) for integer a, b >= 1.

    For integer shapes the regularized incomplete beta function is a binomial tail:
    I_x(a, b) = P(Binomial(a + b - 1, x) >= a). That is exact, which is why the posteriors below keep
    the uniform Beta(1, 1) prior and integer counts.
    """
    if a < 1 or b < 1:
        raise ValueError(f"beta_cdf needs integer shapes >= 1, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return 1.0 - binomial_cdf(a - 1, a + b - 1, x)


def beta_quantile(q: float, a: int, b: int) -> float:
    """Inverse of `beta_cdf` by bisection (the CDF is monotone; 60 halvings reach double precision)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta_posterior(
    successes: int, trials: int, confidence: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """Posterior of a success rate under a uniform prior: Beta(1 + s, 1 + f).

    Returns (posterior mean (1 + s) / (2 + n), equal-tailed credible interval at `confidence`).
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = 1 + successes, 1 + trials - successes
    tail = (1.0 - confidence) / 2.0
    return a / (a + b), (beta_quantile(tail, a, b), beta_quantile(1.0 - tail, a, b))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs of a paired comparison.

    `a_only`: pairs (same task, initial state, seed) where A succeeded and B failed; `b_only` the
    reverse. Under H0 each discordant pair is a fair coin, so p = min(1, 2 P(Bin(a+b, 1/2) <= min)).
    Concordant pairs carry no information about the difference and do not enter.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_cdf(min(a_only, b_only), n, 0.5))


def prob_a_beats_b_paired(a_only: int, b_only: int) -> float:
    """P(A's success rate > B's | paired outcomes), under a uniform Dirichlet over the four outcome cells.

    With a Dirichlet(1, 1, 1, 1) prior on (both, A only, B only, neither), rate_A − rate_B =
    p_Aonly − p_Bonly, and p_Aonly / (p_Aonly + p_Bonly) ~ Beta(1 + a_only, 1 + b_only) independently
    of the concordant cells. So P(A > B) = P(Beta(1 + a_only, 1 + b_only) > 1/2), in closed form.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    return 1.0 - beta_cdf(0.5, 1 + a_only, 1 + b_only)


def _log_beta_fn(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def prob_a_beats_b_unpaired(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """P(p_A > p_B) for independent posteriors p_A ~ Beta(1 + s_A, 1 + f_A), p_B ~ Beta(1 + s_B, 1 + f_B).

    Closed form for an integer first shape of p_B (expanding its CDF as a finite binomial sum):
    P(p_B > p_A) = Σ_{i=0}^{α_B−1} B(α_A + i, β_A + β_B) / ((β_B + i) B(1 + i, β_B) B(α_A, β_A)).
    Use it when the two policies did not run on the same initial states.
    """
    for s, n in ((successes_a, trials_a), (successes_b, trials_b)):
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"need 0 <= successes <= trials, got {s}/{n}")
    aa, ba = 1 + successes_a, 1 + trials_a - successes_a
    ab, bb = 1 + successes_b, 1 + trials_b - successes_b
    b_wins = 0.0
    for i in range(ab):
        b_wins += math.exp(
            _log_beta_fn(aa + i, ba + bb) - math.log(bb + i) - _log_beta_fn(1 + i, bb) - _log_beta_fn(aa, ba)
        )
    return min(1.0, max(0.0, 1.0 - b_wins))


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (controls the family-wise error rate).

    The i-th smallest p (1-based) is multiplied by (m − i + 1); adjusted values are made monotone by a
    running maximum and capped at 1.
    """
    m = len(p_values)
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compact_letter_display(
    names: list[str], different: set[frozenset[str]], letters: str = "abcdefghijklmnopqrstuvwxyz"
) -> dict[str, str]:
    """Letters such that two items share a letter iff they are not significantly different.

    `names` are ordered best first (letter 'a' goes to the group of the first name); `different`
    holds the significantly different pairs. Insert-and-absorb (Piepho 2004): start from one group
    holding everyone; for every significant pair, split each group containing both into the group
    without one and the group without the other; drop groups contained in another group.
    """
    unknown = {n for pair in different for n in pair} - set(names)
    if unknown:
        raise ValueError(f"pairs name items not in the list: {sorted(unknown)}")
    groups: list[frozenset[str]] = [frozenset(names)] if names else []
    for pair in sorted(different, key=lambda p: sorted(p)):
        x, y = sorted(pair)
        split: list[frozenset[str]] = []
        for g in groups:
            if x in g and y in g:
                split.extend([g - {x}, g - {y}])
            else:
                split.append(g)
        unique = list(dict.fromkeys(split))
        groups = [g for g in unique if not any(g < other for other in unique)]
    rank = {n: i for i, n in enumerate(names)}
    groups.sort(key=lambda g: sorted(rank[n] for n in g))
    if len(groups) > len(letters):
        raise ValueError(f"{len(groups)} groups need more than {len(letters)} letters")
    return {n: "".join(letters[k] for k, g in enumerate(groups) if n in g) for n in names}
