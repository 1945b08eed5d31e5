"""A few bf16-compute train steps through the trainer's step: the loss goes down and parameters,
EMA and optimizer state stay float32. Tiny configs (those of test_bf16_compute)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bf16_fixtures import CONFIGS, tiny_batch
from flax import nnx

from robopolicy.cli import _parse
from robopolicy.models.augment import ColorJitter
from robopolicy.models.policy import Policy
from robopolicy.train.ema import EmaConfig
from robopolicy.train.loop import init_state, make_step
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.trainer import policy_loss


def test_bf16_train_steps_decrease_loss_with_float32_state():
    cfg = dataclasses.replace(CONFIGS["cnn-mlp-flow"], compute_dtype="bfloat16")
    model = Policy(cfg, rngs=nnx.Rngs(0))
    graphdef = nnx.graphdef(model)
    tx = optax.adam(3e-3)
    state = init_state(nnx.state(model, nnx.Param), tx, seed=0, ema=True)
    step = make_step(policy_loss(graphdef, ColorJitter()), tx, EmaConfig())
    batch = tiny_batch(cfg)
    key = jax.random.key(5)

    def fixed_loss(params: nnx.State) -> float:
        return float(nnx.merge(graphdef, params).loss_batch(batch, key))

    before = fixed_loss(state["params"])
    for _ in range(30):
        state, metrics = step(state, batch)
        assert metrics["loss"].dtype == jnp.float32 and np.isfinite(float(metrics["loss"]))
    after = fixed_loss(state["params"])
    assert after < 0.9 * before, (before, after)
    for part in ("params", "ema_params", "opt_state"):
        dtypes = {x.dtype for x in jax.tree.leaves(state[part]) if jnp.issubdtype(x.dtype, jnp.floating)}
        assert dtypes == {jnp.dtype(jnp.float32)}, (part, dtypes)


def test_cli_flag_selects_bf16_compute():
    cfg = _parse("train", TrainConfig, TrainConfig(), ["--policy.compute-dtype", "bfloat16"], "")
    assert cfg.policy.compute_dtype == "bfloat16"
    assert _parse("train", TrainConfig, TrainConfig(), ["--policy.compute-dtype", "float16"], "") is None
