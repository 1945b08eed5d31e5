"""Linear (ridge) and kNN probes on synthetic data with known answers."""

import numpy as np
import pytest

from robopolicy.models.embedding_probes import (
    Standardizer,
    knn_predict,
    nearest_neighbour_distance,
    probe_mse,
    ridge_fit,
    ridge_predict,
)


def test_ridge_recovers_a_linear_map_with_bias():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    w_true, b_true = rng.normal(size=(5, 3)), np.asarray([1.0, -2.0, 0.5])
    w = ridge_fit(x, x @ w_true + b_true, ridge=1e-8)
    np.testing.assert_allclose(w[:-1], w_true, atol=1e-6)
    np.testing.assert_allclose(w[-1], b_true, atol=1e-6)
    np.testing.assert_allclose(ridge_predict(w, x[:3]), x[:3] @ w_true + b_true, atol=1e-6)


def test_ridge_penalty_shrinks_weights_but_not_bias():
    # One feature, x = ±1, y = 2x + 3: XᵀX = diag(n, n), so the weight is 2n / (n + λ) and the bias 3.
    x = np.asarray([[1.0], [-1.0], [1.0], [-1.0]])
    w = ridge_fit(x, 2 * x + 3, ridge=4.0)
    np.testing.assert_allclose(w[:, 0], [2 * 4 / (4 + 4), 3.0])


def test_knn_averages_the_nearest_targets():
    x_train = np.asarray([[0.0], [1.0], [2.0], [10.0]])
    y_train = np.asarray([[0.0], [10.0], [20.0], [100.0]])
    np.testing.assert_allclose(
        knn_predict(x_train, y_train, np.asarray([[0.9], [9.0]]), k=2), [[5.0], [60.0]]
    )


def test_probe_mse_is_zero_for_linear_targets_and_one_for_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    y = x @ rng.normal(size=(4, 2))
    perfect = probe_mse(x[:300], y[:300], x[300:], y[300:], ridge=1e-6, k=3)
    assert perfect["linear"] < 1e-8
    assert perfect["knn"] < 0.3  # a nonparametric fit of a linear map from 300 points in 4-d
    noise = rng.normal(size=(400, 2))
    unrelated = probe_mse(x[:300], noise[:300], x[300:], noise[300:], ridge=1e-3, k=50)
    assert 0.8 < unrelated["linear"] < 1.3 and 0.8 < unrelated["knn"] < 1.3


def test_standardizer_leaves_constant_columns_finite():
    s = Standardizer.fit(np.asarray([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(s(np.asarray([[2.0, 5.0]])), [[0.0, 0.0]])


def test_nearest_neighbour_distance_hand_computed():
    # Pool embeddings 0 and 10 with states 0 and 2 (standardised: mean 1, std 1 → −1 and +1).
    x_pool, y_pool = np.asarray([[0.0], [10.0]]), np.asarray([[0.0], [2.0]])
    # Query at 1 (nearest: 0) with state 0: standardised −1 against −1 → 0. Query at 9 (nearest: 10)
    # with state 0: −1 against +1 → 4. Mean 2.
    x_query, y_query = np.asarray([[1.0], [9.0]]), np.asarray([[0.0], [0.0]])
    assert nearest_neighbour_distance(x_pool, y_pool, x_query, y_query) == pytest.approx(2.0)
    assert nearest_neighbour_distance(x_pool, y_pool, x_query[:1], y_query[:1]) == pytest.approx(0.0)
