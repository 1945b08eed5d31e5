"""DDPM / DDIM over action chunks with ε-prediction, as in Diffusion Policy and Past-Token Prediction.

Conventions (those of DDPM, Ho et al. 2020, and the `squaredcos_cap_v2` schedule of Nichol & Dhariwal
2021): training timesteps k ∈ {0, …, T−1}; ᾱ_k = ∏_{i≤k} (1 − β_i);

    x_k = √ᾱ_k · a + √(1 − ᾱ_k) · ε,

and the network predicts ε. Sampling starts from pure noise at k = T−1 and walks down to k = 0.
Predicted clean samples are clipped to [−clip, clip] when `clip` > 0, because actions are min/max
normalized into [−1, 1] (see `robopolicy.data.normalization`).

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

# ε-network: (x_k [B, H, A], k [B] int) -> ε̂ [B, H, A].
EpsilonFn = Callable[[Float[Array, "b h a"], Int[Array, " b"]], Float[Array, "b h a"]]


def squaredcos_cap_v2_betas(num_steps: int, max_beta: float = 0.999) -> Float[np.ndarray, " t"]:
    """β_k = min(1 − ᾱ(t_{k+1}) / ᾱ(t_k), max_beta) with ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), t_k = k/T."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.asarray(
        [
            min(1.0 - alpha_bar((k + 1) / num_steps) / alpha_bar(k / num_steps), max_beta)
            for k in range(num_steps)
        ],
        np.float64,
    ).astype(np.float32)


def alphas_cumprod(betas: Float[np.ndarray, " t"]) -> Float[np.ndarray, " t"]:
    """ᾱ_k = ∏_{i≤k} (1 − β_i), computed in float64 and returned as float32."""
    return np.cumprod(1.0 - betas.astype(np.float64)).astype(np.float32)


def add_noise(
    actions: Float[Array, "b h a"],
    noise: Float[Array, "b h a"],
    timesteps: Int[Array, " b"],
    alpha_bar: Float[Array, " t"],
) -> Float[Array, "b h a"]:
    """The forward process x_k = √ᾱ_k · a + √(1 − ᾱ_k) · ε."""
    ab = jnp.asarray(alpha_bar)[timesteps][:, None, None]
    return jnp.sqrt(ab) * actions + jnp.sqrt(1.0 - ab) * noise


def sample_timesteps(key: PRNGKeyArray, batch: int, num_train_steps: int) -> Int[Array, " b"]:
    """Training timesteps drawn uniformly from {0, …, T−1}."""
    return jax.random.randint(key, (batch,), 0, num_train_steps)


def predicted_clean(
    x_k: Float[Array, "b h a"], eps: Float[Array, "b h a"], alpha_bar_k: Float[Array, " b"], clip: float
) -> Float[Array, "b h a"]:
    """â = (x_k − √(1 − ᾱ_k) · ε̂) / √ᾱ_k, clipped to [−clip, clip] when clip > 0."""
    ab = alpha_bar_k[:, None, None]
    x0 = (x_k - jnp.sqrt(1.0 - ab) * eps) / jnp.sqrt(ab)
    return jnp.clip(x0, -clip, clip) if clip > 0 else x0


def ddpm_step(
    x_k: Float[Array, "b h a"],
    eps: Float[Array, "b h a"],
    k: Int[Array, ""],
    betas: Float[Array, " t"],
    alpha_bar: Float[Array, " t"],
    noise: Float[Array, "b h a"],
    clip: float,
) -> Float[Array, "b h a"]:
    """One ancestral DDPM step x_k → x_{k−1} with the posterior q(x_{k−1} | x_k, â).

    Mean = √ᾱ_{k−1} β_k / (1 − ᾱ_k) · â + √α_k (1 − ᾱ_{k−1}) / (1 − ᾱ_k) · x_k; variance
    β̃_k = β_k (1 − ᾱ_{k−1}) / (1 − ᾱ_k) ("fixed small"); no noise is added at k = 0.
    """
    ab = alpha_bar[k]
    ab_prev = jnp.where(k > 0, alpha_bar[jnp.maximum(k - 1, 0)], 1.0)
    beta = betas[k]
    x0 = predicted_clean(x_k, eps, jnp.full((x_k.shape[0],), ab), clip)
    mean = (jnp.sqrt(ab_prev) * beta / (1.0 - ab)) * x0 + (
        jnp.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)
    ) * x_k
    variance = jnp.maximum(beta * (1.0 - ab_prev) / (1.0 - ab), 1e-20)
    return mean + jnp.where(k > 0, jnp.sqrt(variance), 0.0) * noise


def ddim_timesteps(num_train_steps: int, num_inference_steps: int) -> Int[np.ndarray, " s"]:
    """Evenly spaced timesteps from the start of [0, T) ("leading" spacing), in descending order."""
    if not 1 <= num_inference_steps <= num_train_steps:
        raise ValueError(f"num_inference_steps must be in [1, {num_train_steps}], got {num_inference_steps}")
    ratio = num_train_steps // num_inference_steps
    return (np.arange(num_inference_steps) * ratio)[::-1].astype(np.int32)


def ddim_step(
    x_k: Float[Array, "b h a"],
    eps: Float[Array, "b h a"],
    alpha_bar_k: Float[Array, ""],
    alpha_bar_prev: Float[Array, ""],
    clip: float,
) -> Float[Array, "b h a"]:
    """One deterministic DDIM step (η = 0): x_prev = √ᾱ_prev · â + √(1 − ᾱ_prev) · ε̂."""
    x0 = predicted_clean(x_k, eps, jnp.full((x_k.shape[0],), alpha_bar_k), clip)
    return jnp.sqrt(alpha_bar_prev) * x0 + jnp.sqrt(1.0 - alpha_bar_prev) * eps


def ddpm_sample(
    eps_fn: EpsilonFn,
    noise: Float[Array, "b h a"],
    key: PRNGKeyArray,
    betas: Float[np.ndarray, " t"],
    clip: float,
) -> Float[Array, "b h a"]:
    """Ancestral sampling through all T training steps, from x_{T−1} = `noise` down to x_0."""
    betas_j = jnp.asarray(betas)
    alpha_bar = jnp.asarray(alphas_cumprod(betas))
    num_steps = betas.shape[0]
    batch = noise.shape[0]

    def body(i: int, x: Float[Array, "b h a"]) -> Float[Array, "b h a"]:
        k = num_steps - 1 - i
        eps = eps_fn(x, jnp.full((batch,), k, jnp.int32))
        z = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
        return ddpm_step(x, eps, k, betas_j, alpha_bar, z, clip)

    return jax.lax.fori_loop(0, num_steps, body, noise)


def ddim_sample(
    eps_fn: EpsilonFn,
    noise: Float[Array, "b h a"],
    betas: Float[np.ndarray, " t"],
    num_inference_steps: int,
    clip: float,
) -> Float[Array, "b h a"]:
    """Deterministic DDIM sampling in `num_inference_steps` steps; the last step lands on ᾱ = 1."""
    alpha_bar_np = alphas_cumprod(betas)
    steps = ddim_timesteps(betas.shape[0], num_inference_steps)
    ratio = betas.shape[0] // num_inference_steps
    prev = steps - ratio
    timesteps = jnp.asarray(steps)
    alpha_bar = jnp.asarray(alpha_bar_np[steps])
    alpha_bar_prev = jnp.asarray(
        np.where(prev >= 0, alpha_bar_np[np.maximum(prev, 0)], 1.0).astype(np.float32)
    )
    batch = noise.shape[0]

    def body(i: int, x: Float[Array, "b h a"]) -> Float[Array, "b h a"]:
        eps = eps_fn(x, jnp.full((batch,), timesteps[i], jnp.int32))
        return ddim_step(x, eps, alpha_bar[i], alpha_bar_prev[i], clip)

    return jax.lax.fori_loop(0, num_inference_steps, body, noise)
