"""bf16 compute (`PolicyConfig.compute_dtype="bfloat16"`): float32 parameters, bf16 activations,
float32 losses and actions, close to the float32 policy, and trainable. Tiny configs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bf16_fixtures import BASE, CONFIGS, tiny_batch
from flax import nnx

from robopolicy.models.cnn_encoder import spatial_softmax
from robopolicy.models.policy import SHARED, Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.transformer_denoiser import attention


def _pair(cfg: PolicyConfig) -> tuple[Policy, Policy]:
    """The same initial parameters computed in float32 and in bf16."""
    return (
        Policy(cfg, rngs=nnx.Rngs(0)),
        Policy(dataclasses.replace(cfg, compute_dtype="bfloat16"), rngs=nnx.Rngs(0)),
    )


def test_config_validates_and_reads_old_metadata():
    with pytest.raises(ValueError, match="compute_dtype"):
        PolicyConfig(compute_dtype="float16")
    old = dataclasses.asdict(BASE)
    del old["compute_dtype"]  # metadata written before the field existed
    assert PolicyConfig.from_dict(old).compute_dtype == "float32"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bf16_params_activations_loss_and_samples(name):
    cfg = CONFIGS[name]
    f32, bf16 = _pair(cfg)
    p32, p16 = nnx.state(f32, nnx.Param), nnx.state(bf16, nnx.Param)
    assert {x.dtype for x in jax.tree.leaves(p16)} == {jnp.dtype(jnp.float32)}
    jax.tree.map(np.testing.assert_array_equal, p32, p16)

    batch = tiny_batch(cfg)
    flat = batch["images"]["agentview"].reshape(-1, cfg.image_size, cfg.image_size, 3)
    # Abstract evaluation: output dtypes without running the layers eagerly (slow on this CPU).
    assert jax.eval_shape(lambda: bf16.encoders["agentview"](flat)).dtype == jnp.bfloat16
    cond = jax.eval_shape(
        lambda: bf16.encode(batch["images"], batch["state"], instruction=batch.get("instruction"))
    )
    assert all(v.dtype in (jnp.bfloat16, jnp.bool_) for v in jax.tree.leaves(cond))

    def raw_denoiser() -> jax.Array:
        c = bf16.encode(batch["images"], batch["state"], instruction=batch.get("instruction"))
        t = jnp.full((batch["action"].shape[0],), 0.5)
        if cfg.denoiser == "mlp":
            return bf16.denoiser(batch["action"], t, c["vector"])
        return bf16.denoiser(batch["action"], t, c["tokens"], c["valid"], c.get("prefix"))

    assert jax.eval_shape(raw_denoiser).dtype == jnp.bfloat16

    # The matmuls and convolutions of the loss are bf16 in the traced program.
    key = jax.random.key(1)
    jaxpr = jax.make_jaxpr(lambda: bf16.loss_batch(batch, key))()
    ops = [e for e in jaxpr.jaxpr.eqns if e.primitive.name in ("dot_general", "conv_general_dilated")]
    bf16_ops = [e for e in ops if e.invars[0].aval.dtype == jnp.bfloat16]
    assert any(e.primitive.name == "conv_general_dilated" for e in bf16_ops)
    assert len(bf16_ops) >= len(ops) - 3, "only the float32 softmax-weighted sums may stay float32"

    # Jitted: one compile each instead of one per primitive in eager mode.
    l32 = _jit_loss(f32)(nnx.state(f32, nnx.Param), batch, key)
    l16 = _jit_loss(bf16)(p16, batch, key)
    assert l16.dtype == jnp.float32 and np.isfinite(float(l16))
    assert abs(float(l16) - float(l32)) <= 0.05 * abs(float(l32)) + 0.02, (float(l16), float(l32))

    graphdef = nnx.graphdef(bf16)
    actions = jax.jit(lambda p, b, k: nnx.merge(graphdef, p).sample_batch(b, k))(p16, batch, key)
    assert actions.dtype == jnp.float32 and actions.shape == batch["action"].shape
    assert np.isfinite(np.asarray(actions)).all()


def _jit_loss(policy: Policy):
    graphdef = nnx.graphdef(policy)
    return jax.jit(lambda p, b, k: nnx.merge(graphdef, p).loss_batch(b, k))


def test_softmaxes_run_in_float32():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3)).astype(jnp.bfloat16) * 8
    out = spatial_softmax(x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), spatial_softmax(x.astype(jnp.float32)), atol=1e-2)
    jaxpr = str(jax.make_jaxpr(spatial_softmax)(x))
    assert "reduce_max" in jaxpr and "exp" in jaxpr
    exps = [e for e in jax.make_jaxpr(spatial_softmax)(x).jaxpr.eqns if e.primitive.name == "exp"]
    assert exps and all(e.outvars[0].aval.dtype == jnp.float32 for e in exps)
    q = jax.random.normal(jax.random.key(1), (1, 3, 2, 4)).astype(jnp.bfloat16)
    mask = jnp.ones((1, 3, 3), bool)
    eqns = jax.make_jaxpr(lambda q: attention(q, q, q, mask, 0.0, None))(q).jaxpr.eqns
    exps = [e for e in eqns if e.primitive.name == "exp"]
    assert exps and all(e.outvars[0].aval.dtype == jnp.float32 for e in exps)
    assert attention(q, q, q, mask, 0.0, None).dtype == jnp.bfloat16


def test_shared_encoder_and_cached_embeddings_compute_in_bf16():
    cfg = dataclasses.replace(BASE, compute_dtype="bfloat16", cameras=("a", "b"), shared_encoder=True)
    policy = Policy(cfg, rngs=nnx.Rngs(0))
    assert list(policy.encoders) == [SHARED]
    cached = Policy(dataclasses.replace(cfg, encoder="cached"), rngs=nnx.Rngs(0))
    emb = {c: jnp.ones((2, cfg.obs_horizon, cfg.feature_dim), jnp.float32) for c in cfg.cameras}
    state = jnp.zeros((2, cfg.obs_horizon, cfg.state_dim))
    assert cached.encode_steps(None, state, embeddings=emb).dtype == jnp.bfloat16
