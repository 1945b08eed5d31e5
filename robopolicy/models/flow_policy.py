"""A visuomotor policy with a flow-matching action head.

Observation history (To steps of every camera plus proprio) → one conditioning vector →
a velocity network over the action chunk. Everything works in normalized action/state space; the
caller (see `robopolicy.eval.policy_runner`) un-normalizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

from robopolicy.models import flow_matching
from robopolicy.models.augment import random_shift
from robopolicy.models.cnn_encoder import ConvEncoder
from robopolicy.models.mlp_denoiser import MLPDenoiser
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.precision import compute_dtype, to_float32

Images = dict[str, UInt8[Array, "b to h w 3"]]


class FlowPolicy(nnx.Module):
    def __init__(self, config: PolicyConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        dtype = compute_dtype(config.compute_dtype)
        self.encoders = nnx.Dict(
            {
                cam: ConvEncoder(
                    config.encoder_channels,
                    config.feature_dim,
                    config.image_size,
                    config.pooling,
                    dtype=dtype,
                    rngs=rngs,
                )
                for cam in config.cameras
            }
        )
        self.state_proj = nnx.Linear(config.state_dim, config.feature_dim, dtype=dtype, rngs=rngs)
        cond_dim = config.obs_horizon * config.feature_dim * (len(config.cameras) + 1)
        self.denoiser = MLPDenoiser(
            config.action_horizon,
            config.action_dim,
            cond_dim,
            config.denoiser_width,
            config.denoiser_depth,
            dtype=dtype,
            rngs=rngs,
        )

    def encode(
        self, images: Images, state: Float[Array, "b to s"], augment_key: PRNGKeyArray | None = None
    ) -> Float[Array, "b c"]:
        """Observation history → conditioning vector. Camera encoders run on all To frames at once.

        With `augment_key`, images are randomly shifted first (training only).
        """
        b, to = state.shape[:2]
        feats = []
        for i, cam in enumerate(self.config.cameras):
            frames = images[cam]
            flat = frames.reshape(b * to, *frames.shape[2:])
            if augment_key is not None:
                flat = random_shift(flat, jax.random.fold_in(augment_key, i), self.config.image_shift)
            feats.append(self.encoders[cam](flat).reshape(b, to, -1))
        feats.append(self.state_proj(state))
        return jnp.concatenate(feats, axis=-1).reshape(b, -1)

    def loss_token_mask(self) -> Float[Array, " h"]:
        """Which chunk positions the loss covers: the current action (index To−1) and the future."""
        return (jnp.arange(self.config.action_horizon) >= self.config.obs_horizon - 1).astype(jnp.float32)

    def loss(
        self,
        images: Images,
        state: Float[Array, "b to s"],
        actions: Float[Array, "b h a"],
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """Flow-matching loss on a batch of normalized windows.

        Padded positions past an episode's end are kept: they repeat the final at-rest action, which
        teaches the policy to stay put once done (as Diffusion Policy does).
        """
        t_key, noise_key, augment_key = jax.random.split(key, 3)
        b = actions.shape[0]
        alpha, beta = self.config.time_beta
        t = flow_matching.sample_time(t_key, b, alpha, beta)
        noise = jax.random.normal(noise_key, actions.shape, actions.dtype)
        x_t = flow_matching.interpolate(actions, noise, t)
        predicted = to_float32(self.denoiser(x_t, t, self.encode(images, state, augment_key)))
        return flow_matching.flow_matching_loss(predicted, actions, noise, self.loss_token_mask())

    def sample(
        self, images: Images, state: Float[Array, "b to s"], key: PRNGKeyArray
    ) -> Float[Array, "b h a"]:
        """Draw one normalized action chunk per batch element by Euler integration from noise."""
        cond = self.encode(images, state)
        b = state.shape[0]
        noise = jax.random.normal(key, (b, self.config.action_horizon, self.config.action_dim))
        return flow_matching.euler_sample(
            lambda x, t: to_float32(self.denoiser(x, t, cond)), noise, self.config.flow_steps
        )
