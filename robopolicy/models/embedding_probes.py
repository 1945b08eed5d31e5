"""Probes of frozen embeddings: how well do they predict state or actions on held-out episodes?

The linear and kNN probes standardise features and targets with the *training* split's mean and
std, so an MSE of 1.0 is what predicting the training mean scores and 0 is perfect, whatever the
target's units. The nearest-neighbour distance (DynaMo's offline evaluation) compares a held-out
frame's target with that of its nearest training frame in raw embedding space, in the same
standardised units: 0 when neighbours in embedding space are neighbours in state, about 2 when the
neighbour is no closer than a random frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float


@dataclass(frozen=True)
class Standardizer:
    mean: Float[np.ndarray, " d"]
    std: Float[np.ndarray, " d"]

    @classmethod
    def fit(cls, x: Float[np.ndarray, "n d"], eps: float = 1e-6) -> Standardizer:
        # Constant columns (e.g. a gripper that never moves) get std 1 instead of blowing up.
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > eps, std, 1.0))

    def __call__(self, x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n d"]:
        return (x - self.mean) / self.std


def ridge_fit(
    x: Float[np.ndarray, "n d"], y: Float[np.ndarray, "n k"], ridge: float
) -> Float[np.ndarray, "d1 k"]:
    """Closed-form ridge regression with an unpenalised bias: weights [D+1, K], the bias last.

    Solves (XᵀX + λ·I')W = XᵀY with X = [x, 1] and I' the identity with a 0 for the bias.
    """
    xb = np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1).astype(np.float64)
    penalty = ridge * np.eye(xb.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(xb.T @ xb + penalty, xb.T @ y.astype(np.float64))


def ridge_predict(w: Float[np.ndarray, "d1 k"], x: Float[np.ndarray, "n d"]) -> Float[np.ndarray, "n k"]:
    return x @ w[:-1] + w[-1]


def knn_predict(
    x_train: Float[np.ndarray, "n d"], y_train: Float[np.ndarray, "n k"], x: Float[np.ndarray, "m d"], k: int
) -> Float[np.ndarray, "m k"]:
    """Mean target of the k nearest training points (Euclidean); ties broken by training order."""
    k = min(k, len(x_train))
    sq = (x**2).sum(1)[:, None] - 2.0 * x @ x_train.T + (x_train**2).sum(1)[None]
    nearest = np.argsort(sq, axis=1, kind="stable")[:, :k]
    return y_train[nearest].mean(axis=1)


def nearest_neighbour_distance(
    x_pool: Float[np.ndarray, "n d"],
    y_pool: Float[np.ndarray, "n k"],
    x_query: Float[np.ndarray, "m d"],
    y_query: Float[np.ndarray, "m k"],
) -> float:
    """Mean over queries of the mean squared difference between a query's target and that of its
    nearest pool frame (Euclidean, on the raw embeddings, as the reference's `batch_knn` with an MSE
    metric), in the pool's standardised target units."""
    fy = Standardizer.fit(y_pool)
    nearest = knn_predict(x_pool, fy(y_pool), x_query, 1)
    return float(np.mean((nearest - fy(y_query)) ** 2))


def probe_mse(
    x_train: Float[np.ndarray, "n d"],
    y_train: Float[np.ndarray, "n k"],
    x_test: Float[np.ndarray, "m d"],
    y_test: Float[np.ndarray, "m k"],
    ridge: float = 1e-3,
    k: int = 5,
) -> dict[str, float]:
    """{"linear": MSE, "knn": MSE} on the test split, in training-standardised target units."""
    fx, fy = Standardizer.fit(x_train), Standardizer.fit(y_train)
    xs_train, xs_test = fx(x_train), fx(x_test)
    ys_train, ys_test = fy(y_train), fy(y_test)
    linear = ridge_predict(ridge_fit(xs_train, ys_train, ridge), xs_test)
    knn = knn_predict(xs_train, ys_train, xs_test, k)
    return {
        "linear": float(np.mean((linear - ys_test) ** 2)),
        "knn": float(np.mean((knn - ys_test) ** 2)),
    }
