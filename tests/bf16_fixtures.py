"""Tiny policy configs covering every encoder, denoiser and head, and a batch for them (bf16 tests)."""

import dataclasses

import jax.numpy as jnp
import numpy as np

from robopolicy.models.policy_config import PolicyConfig

BASE = PolicyConfig(
    cameras=("agentview",),
    image_size=16,
    encoder_channels=(8, 16),
    feature_dim=16,
    image_shift=2,
    denoiser_width=32,
    denoiser_depth=1,
    obs_horizon=2,
    action_horizon=4,
    n_action_steps=2,
    transformer_dim=32,
    transformer_layers=1,
    transformer_heads=2,
    attention_dropout=0.0,
    diffusion_train_steps=10,
    diffusion_inference_steps=5,
    flow_steps=3,
)
# Every encoder, denoiser and head in two configs (ResNet-18 at 32 px: a 1×1 final map).
CONFIGS = {
    "cnn-mlp-flow": BASE,
    "resnet18-transformer-diffusion": dataclasses.replace(
        BASE,
        encoder="resnet18",
        image_size=32,
        num_keypoints=4,
        denoiser="transformer",
        head="diffusion",
        diffusion_sampler="ddim",
        text="attention",
        vocab_size=6,
    ),
}


def tiny_batch(cfg: PolicyConfig, b: int = 4) -> dict:
    """A fixed random batch of `b` windows (uint8 images, normalized state and actions)."""
    rng = np.random.default_rng(0)
    to, s = cfg.obs_horizon, cfg.image_size
    batch = {
        "images": {
            c: jnp.asarray(rng.integers(0, 256, (b, to, s, s, 3), dtype=np.uint8)) for c in cfg.cameras
        },
        "state": jnp.asarray(rng.normal(size=(b, to, cfg.state_dim)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, (b, cfg.action_horizon, cfg.action_dim)), jnp.float32),
    }
    if cfg.text != "none":
        batch["instruction"] = jnp.asarray([[2, 3, 4, 0]] * b, jnp.int32)
    return batch
