import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robopolicy.models import diffusion as d

# A two-step schedule with round numbers: β = [0.36, 0.4375] → ᾱ = [0.64, 0.64·0.5625 = 0.36],
# so √ᾱ = [0.8, 0.6], √(1 − ᾱ) = [0.6, 0.8] and √α_1 = 0.75.
BETAS = jnp.asarray([0.36, 0.4375])
ALPHA_BAR = jnp.asarray([0.64, 0.36])


def test_squaredcos_cap_v2_hand_computed():
    # T = 2: ᾱ(0) = cos²(0.008/1.008 · π/2) = 0.999845, ᾱ(0.5) = cos²(0.508/1.008 · π/2) = 0.493768,
    # ᾱ(1) = cos²(π/2) = 0 → β = [1 − 0.493768/0.999845, min(1 − 0, 0.999)] = [0.506156, 0.999].
    np.testing.assert_allclose(d.squaredcos_cap_v2_betas(2), [0.506156, 0.999], atol=1e-6)
    betas = d.squaredcos_cap_v2_betas(100)
    assert betas.shape == (100,) and np.all(np.diff(betas) > 0) and betas[-1] == pytest.approx(0.999)
    assert betas[0] == pytest.approx(
        1 - math.cos((0.01 + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2,
        rel=1e-4,
    )
    np.testing.assert_allclose(
        d.alphas_cumprod(np.asarray([0.36, 0.4375], np.float32)), [0.64, 0.36], rtol=1e-6
    )


def test_add_noise_hand_computed():
    a = jnp.asarray([[[1.0, -1.0]]])
    eps = jnp.asarray([[[0.5, 2.0]]])
    # k = 1: 0.6·a + 0.8·ε = [0.6 + 0.4, −0.6 + 1.6]
    np.testing.assert_allclose(d.add_noise(a, eps, jnp.asarray([1]), ALPHA_BAR), [[[1.0, 1.0]]], atol=1e-6)


def test_ddpm_step_hand_computed():
    x = jnp.ones((1, 1, 1))
    eps = jnp.full((1, 1, 1), 0.5)
    # k = 1: â = (1 − 0.8·0.5)/0.6 = 1. Mean = 0.8·0.4375/0.64 · â + 0.75·0.36/0.64 · x
    # = 0.546875 + 0.421875 = 0.96875; variance = 0.4375·0.36/0.64 = 0.24609375.
    out = d.ddpm_step(x, eps, jnp.asarray(1), BETAS, ALPHA_BAR, jnp.zeros_like(x), clip=0.0)
    np.testing.assert_allclose(out, 0.96875, atol=1e-6)
    out = d.ddpm_step(x, eps, jnp.asarray(1), BETAS, ALPHA_BAR, jnp.full_like(x, 2.0), clip=0.0)
    np.testing.assert_allclose(out, 0.96875 + 2 * math.sqrt(0.24609375), atol=1e-6)
    # Clipping â to 0.5: 0.546875·0.5 + 0.421875 = 0.6953125.
    out = d.ddpm_step(x, eps, jnp.asarray(1), BETAS, ALPHA_BAR, jnp.zeros_like(x), clip=0.5)
    np.testing.assert_allclose(out, 0.6953125, atol=1e-6)
    # k = 0: ᾱ_prev = 1, â = (0.5 − 0.6·0.5)/0.8 = 0.25; mean = 0.36/0.36 · â; no noise is added.
    out = d.ddpm_step(
        jnp.full((1, 1, 1), 0.5), eps, jnp.asarray(0), BETAS, ALPHA_BAR, jnp.full_like(x, 9.0), 0.0
    )
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_ddim_step_and_timesteps_hand_computed():
    x = jnp.ones((1, 1, 1))
    eps = jnp.full((1, 1, 1), 0.5)
    # â = (1 − 0.8·0.5)/0.6 = 1; x_prev = √0.64 · 1 + √0.36 · 0.5 = 1.1
    np.testing.assert_allclose(d.ddim_step(x, eps, jnp.asarray(0.36), jnp.asarray(0.64), 0.0), 1.1, atol=1e-6)
    np.testing.assert_array_equal(d.ddim_timesteps(100, 10), [90, 80, 70, 60, 50, 40, 30, 20, 10, 0])
    np.testing.assert_array_equal(d.ddim_timesteps(100, 100), np.arange(100)[::-1])
    with pytest.raises(ValueError, match="num_inference_steps"):
        d.ddim_timesteps(100, 0)


def _point_mass_eps(a: jax.Array, alpha_bar: np.ndarray) -> d.EpsilonFn:
    # For a single data point a, the exact ε given x_k is (x_k − √ᾱ_k a) / √(1 − ᾱ_k).
    ab = jnp.asarray(alpha_bar)

    def eps_fn(x: jax.Array, k: jax.Array) -> jax.Array:
        abk = ab[k][:, None, None]
        return (x - jnp.sqrt(abk) * a) / jnp.sqrt(1.0 - abk)

    return eps_fn


@pytest.mark.parametrize("sampler", ["ddpm", "ddim10", "ddim1"])
def test_samplers_recover_point_mass(sampler):
    a = jnp.asarray([[[0.5, -0.9, 0.1], [0.0, 0.3, -0.2]]])
    betas = d.squaredcos_cap_v2_betas(100)
    eps_fn = _point_mass_eps(a, d.alphas_cumprod(betas))
    noise = jax.random.normal(jax.random.key(0), (8, 2, 3))
    if sampler == "ddpm":
        out = d.ddpm_sample(eps_fn, noise, jax.random.key(1), betas, clip=1.0)
    else:
        out = d.ddim_sample(eps_fn, noise, betas, int(sampler[4:]), clip=1.0)
    np.testing.assert_allclose(out, jnp.broadcast_to(a, out.shape), atol=1e-4)


def test_training_timesteps_cover_range():
    k = np.asarray(d.sample_timesteps(jax.random.key(0), 5000, 100))
    assert k.min() == 0 and k.max() == 99
