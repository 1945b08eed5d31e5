"""Golden regression values: the loss and sampled actions of a small policy for a fixed seed and batch.

The config is the quickstart's kind (CNN encoders, residual MLP denoiser, flow matching); the values
date from the original flow policy, whose parameters, loss and samples `Policy` reproduces.

A deliberate change of model defaults regenerates them in the same commit:
    ROBOPOLICY_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig

GOLDEN = Path(__file__).parent / "golden" / "flow_policy_small.json"
CONFIG = PolicyConfig(
    image_size=16,
    encoder_channels=(8, 16),
    feature_dim=16,
    denoiser_width=64,
    denoiser_depth=2,
    image_shift=2,
)


def _outputs() -> dict[str, list]:
    model = Policy(CONFIG, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    b, to, h = 2, CONFIG.obs_horizon, CONFIG.action_horizon
    images = {
        c: jnp.asarray(rng.integers(0, 256, (b, to, 16, 16, 3), dtype=np.uint8)) for c in CONFIG.cameras
    }
    state = jnp.asarray(rng.normal(size=(b, to, CONFIG.state_dim)), jnp.float32)
    actions = jnp.asarray(rng.uniform(-1, 1, size=(b, h, CONFIG.action_dim)), jnp.float32)
    loss = model.loss(images, state, actions, jax.random.key(1))
    sample = model.sample(images, state, jax.random.key(2))
    return {"loss": [float(loss)], "sample_first_row": np.asarray(sample[:, 0]).round(6).tolist()}


def test_golden_outputs():
    got = _outputs()
    if os.environ.get("ROBOPOLICY_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)
