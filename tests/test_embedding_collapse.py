import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.models.dynamo_loss import covariance_regularizer
from robopolicy.models.embedding_collapse import effective_rank, normalized_std


def test_effective_rank_hand_cases():
    # Centred rows ±e1, ±e2 with equal spread: singular values (√2, √2, 0) → p = (½, ½, 0) → e^{ln 2} = 2.
    z = jnp.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]])
    assert float(effective_rank(z)) == pytest.approx(2.0, rel=1e-5)
    # Everything on one line → 1, whatever the offset.
    line = jnp.outer(jnp.arange(5.0), jnp.array([1.0, 2.0, 3.0])) + 7.0
    assert float(effective_rank(line)) == pytest.approx(1.0, rel=1e-4)
    # Singular values in ratio 3:1 → p = (¾, ¼) → exp(−¾ln¾ − ¼ln¼).
    z = jnp.array([[3.0, 0], [-3.0, 0], [0, 1.0], [0, -1.0]])
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert float(effective_rank(z)) == pytest.approx(expected, rel=1e-5)


def test_normalized_std_is_scale_free_and_sees_collapse():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(20000, 16)))
    assert float(normalized_std(z)) == pytest.approx(1.0, abs=0.02)
    assert float(normalized_std(1e-3 * z)) == pytest.approx(float(normalized_std(z)), rel=1e-5)
    collapsed = jnp.ones((100, 16)) + 1e-6 * z[:100]
    assert float(normalized_std(collapsed)) < 1e-4


def test_covariance_regularizer_is_quartic_in_scale():
    # Why raw embedding spread is no collapse measure: shrinking z by c scales the regulariser by c⁴.
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(64, 8)) @ rng.normal(size=(8, 8)))
    assert float(covariance_regularizer(0.5 * z)) == pytest.approx(
        0.5**4 * float(covariance_regularizer(z)), rel=1e-4
    )
    assert float(effective_rank(0.5 * z)) == pytest.approx(float(effective_rank(z)), rel=1e-4)
