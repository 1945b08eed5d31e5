"""Golden regression values of the new policy heads: loss and sampled actions for a fixed seed and batch.

A deliberate change of model defaults regenerates them in the same commit:
    ROBOPOLICY_UPDATE_GOLDEN=1 pytest tests/test_golden_heads.py
"""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig

GOLDEN = Path(__file__).parent / "golden" / "policy_heads_small.json"
_BASE = dict(
    image_size=16,
    encoder_channels=(8, 16),
    feature_dim=16,
    image_shift=2,
    obs_horizon=3,
    action_horizon=6,
    n_action_steps=1,
)
CONFIGS = {
    # Transformer + DDPM/DDIM + PTP on every past token + attention-pooled instruction, shared encoder.
    "transformer_diffusion_ptp": PolicyConfig(
        **_BASE,
        shared_encoder=True,
        text="attention",
        vocab_size=10,
        denoiser="transformer",
        transformer_dim=32,
        transformer_layers=2,
        transformer_heads=4,
        head="diffusion",
        diffusion_train_steps=20,
        diffusion_sampler="ddim",
        diffusion_inference_steps=5,
        past_steps=PAST_STEPS_ALL,
    ),
    # Residual MLP + flow matching on cached embeddings + mean-pooled instruction, PTP k = 1.
    "mlp_flow_cached": PolicyConfig(
        **_BASE,
        encoder="cached",
        text="mean",
        vocab_size=10,
        denoiser_width=32,
        denoiser_depth=2,
        flow_steps=4,
        past_steps=1,
    ),
}


def _batch(cfg: PolicyConfig) -> dict:
    rng = np.random.default_rng(0)
    b, to, h = 2, cfg.obs_horizon, cfg.action_horizon
    batch = {
        "state": jnp.asarray(rng.normal(size=(b, to, cfg.state_dim)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, size=(b, h, cfg.action_dim)), jnp.float32),
        "action_valid": jnp.asarray([[True] * h, [True] * (h - 2) + [False] * 2]),
        "obs_valid": jnp.asarray([[True] * to, [False] + [True] * (to - 1)]),
        "instruction": jnp.asarray([[2, 5, 7, 0], [3, 1, 0, 0]], jnp.int32),
    }
    if cfg.encoder == "cached":
        batch["embeddings"] = {
            c: jnp.asarray(rng.normal(size=(b, to, cfg.feature_dim)), jnp.float32) for c in cfg.cameras
        }
    else:
        batch["images"] = {
            c: jnp.asarray(rng.integers(0, 256, (b, to, 16, 16, 3), dtype=np.uint8)) for c in cfg.cameras
        }
    return batch


def _outputs() -> dict[str, list]:
    got = {}
    for name, cfg in CONFIGS.items():
        policy = Policy(cfg, rngs=nnx.Rngs(0))
        batch = _batch(cfg)
        # Jitted: one compilation is much cheaper on a CPU than op-by-op dispatch of every layer.
        got[f"{name}/loss"] = [float(nnx.jit(Policy.loss_batch)(policy, batch, jax.random.key(1)))]
        sample = nnx.jit(Policy.sample_batch)(policy, batch, jax.random.key(2))
        got[f"{name}/sample_first_row"] = np.asarray(sample[:, 0]).round(6).tolist()
    return got


def test_golden_head_outputs():
    got = _outputs()
    if os.environ.get("ROBOPOLICY_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)
