"""DynaMo model and loss: hand-computed regulariser and per-view loss, stop-gradient, shapes, the
ablation variants, dropout, and learning a moving blob."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from robopolicy.models.dynamo import DynaMo
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.dynamo_loss import (
    cosine_prediction_loss,
    covariance_regularizer,
    predict_next,
    target_ema_decay,
)

TINY = DynamoConfig(
    image_size=16,
    encoder="cnn",
    encoder_channels=(4, 8),
    feature_dim=8,
    window=4,
    latent_dim=4,
    transformer_dim=16,
    transformer_layers=1,
    transformer_heads=2,
)


def test_covariance_regularizer_hand_computed():
    # Columns x, 2x, constant: cov = [[1, 2, 0], [2, 4, 0], [0, 0, 0]] with the (n−1) normaliser.
    z = jnp.asarray([[0.0, 0.0, 5.0], [1.0, 2.0, 5.0], [2.0, 4.0, 5.0]])
    # Off-diagonal squares: 2² + 2² = 8 over 3·2 = 6 entries.
    np.testing.assert_allclose(covariance_regularizer(z), 8.0 / 6.0, rtol=1e-6)
    np.testing.assert_allclose(covariance_regularizer(z[:, :2]), 4.0, rtol=1e-6)
    # Decorrelated columns cost nothing.
    np.testing.assert_allclose(covariance_regularizer(jnp.asarray([[1.0, 0], [0, 1], [1, 1], [0, 0]])), 0.0)


def test_cosine_loss_values_and_stop_gradient():
    pred = jnp.asarray([[1.0, 0.0], [0.0, 2.0]])
    target = jnp.asarray([[3.0, 0.0], [1.0, 0.0]])  # same direction (loss 0), orthogonal (loss 1)
    np.testing.assert_allclose(cosine_prediction_loss(pred, target), 0.5, rtol=1e-6)
    g_pred, g_target = jax.grad(cosine_prediction_loss, argnums=(0, 1))(pred + 0.1, target)
    assert np.abs(np.asarray(g_pred)).sum() > 0
    np.testing.assert_array_equal(np.asarray(g_target), 0.0)


def test_target_ema_decay_anneals_from_start_to_one():
    np.testing.assert_allclose(target_ema_decay(0, 100, 0.99), 0.99, rtol=1e-6)
    np.testing.assert_allclose(target_ema_decay(50, 100, 0.99), 0.995, rtol=1e-6)
    np.testing.assert_allclose(target_ema_decay(100, 100, 0.99), 1.0, rtol=1e-6)


# Two views, a window of 2, 2-d embeddings: view a moves (1,0) → (0,1), view b (1,1) → (1,0).
HAND_Z = jnp.asarray([[[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # [B=1, W=2, V=2, E=2]


def _hand_loss(z, inverse, forward, views):
    pred, latents = predict_next(z, inverse, forward, views, "inverse_forward")
    return float(cosine_prediction_loss(pred, z[:, 1:])), latents


def test_per_view_loss_hand_computed():
    # The latent action is the first coordinate of the step's input; the forward model adds it to the
    # second coordinate of z_t. Per view, each view gets its own latent: view a l = 0, so ẑ = (1, 0)
    # against (0, 1): 1 − cos = 1; view b l = 1, ẑ = (1, 2) against (1, 0): 1 − 1/√5. The loss is
    # their mean over views.
    inverse = lambda s: s[..., :1]  # noqa: E731
    forward = lambda x: x[..., :2] + x[..., 2:3] * jnp.asarray([0.0, 1.0])  # noqa: E731
    loss, latents = _hand_loss(HAND_Z, inverse, forward, "per_view")
    np.testing.assert_allclose(loss, (1.0 + 1.0 - 1.0 / np.sqrt(5.0)) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(latents)[:, 0, 0], [0.0, 1.0])  # one latent per view


def test_concatenated_views_share_one_latent_hand_computed():
    # One step vector (z_a, z_b) and one latent: the first coordinate of (0, 1, 1, 0), 0, for both
    # views; so view b's prediction is (1, 1) against (1, 0): 1 − 1/√2, view a's 1 as before.
    inverse = lambda s: s[..., :1]  # noqa: E731
    forward = lambda x: x[..., :4] + x[..., 4:5] * jnp.asarray([0.0, 1.0, 0.0, 1.0])  # noqa: E731
    loss, latents = _hand_loss(HAND_Z, inverse, forward, "concatenated")
    np.testing.assert_allclose(loss, (1.0 + 1.0 - 1.0 / np.sqrt(2.0)) / 2.0, rtol=1e-6)
    assert latents.shape == (1, 1, 1)


def test_ablation_dynamics_hand_computed():
    # forward_only: ẑ_1 = forward(z_0), no latent; inverse_only: ẑ_1 = forward(l_1) from the latent alone.
    identity = lambda x: x  # noqa: E731
    pred, latents = predict_next(HAND_Z, None, identity, "per_view", "forward_only")
    np.testing.assert_allclose(np.asarray(pred), np.asarray(HAND_Z[:, :1]))
    assert latents.shape == (2, 1, 0)
    pred, _ = predict_next(HAND_Z, lambda s: 2.0 * s, identity, "per_view", "inverse_only")
    np.testing.assert_allclose(np.asarray(pred), 2.0 * np.asarray(HAND_Z[:, 1:]))


def test_stop_gradient_can_be_switched_off_for_the_ablation():
    pred, target = jnp.asarray([[1.0, 0.5]]), jnp.asarray([[0.2, 1.0]])
    g_off = jax.grad(lambda t: cosine_prediction_loss(pred, t, stop_gradient=False))(target)
    g_on = jax.grad(lambda t: cosine_prediction_loss(pred, t))(target)
    assert np.abs(np.asarray(g_off)).sum() > 0
    np.testing.assert_array_equal(np.asarray(g_on), 0.0)


@pytest.fixture(scope="module")
def tiny_model():
    """(graphdef, params) of the two-view TINY model, built once: initialisation compiles per shape."""
    return nnx.split(DynaMo(TINY, rngs=nnx.Rngs(0)), nnx.Param)


@pytest.mark.parametrize(
    ("cameras", "views", "dynamics"),
    [
        (("agentview",), "per_view", "inverse_forward"),
        (("agentview", "wrist"), "per_view", "inverse_forward"),
        (("a", "b", "c"), "per_view", "inverse_forward"),
        (("agentview", "wrist"), "concatenated", "inverse_forward"),
        (("agentview", "wrist"), "per_view", "forward_only"),
        (("agentview", "wrist"), "per_view", "inverse_only"),
    ],
)
def test_shapes_for_multiple_views(cameras, views, dynamics):
    config = DynamoConfig(**{**TINY.__dict__, "cameras": cameras, "views": views, "dynamics": dynamics})
    graphdef, params = nnx.split(nnx.eval_shape(lambda: DynaMo(config, rngs=nnx.Rngs(0))))
    images = {cam: jax.ShapeDtypeStruct((3, 4, 16, 16, 3), jnp.uint8) for cam in cameras}

    def run(params, images):
        model = nnx.merge(graphdef, params)
        z = model.embed(images)
        return z, *model.predict_next(z), model.losses(images)

    # Shapes only (no compilation): tracing checks every reshape and concatenation over the views.
    z, pred, latents, terms = jax.eval_shape(run, params, images)
    assert z.shape == (3, 4, len(cameras), 8)
    assert pred.shape == (3, 3, len(cameras), 8)
    sequences = 3 * len(cameras) if views == "per_view" else 3
    assert latents.shape == (sequences, 3, 0 if dynamics == "forward_only" else 4)
    assert {k: v.shape for k, v in terms.items()} == {
        "loss": (),
        "dynamics": (),
        "covariance": (),
        "embedding_std": (),
        "normalized_std": (),
        "effective_rank": (),
    }


def test_no_gradient_flows_into_the_target_branch(tiny_model):
    graphdef, params = tiny_model
    rng = np.random.default_rng(1)
    images = {cam: rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8) for cam in TINY.cameras}

    def loss(params, target_z):
        return nnx.merge(graphdef, params).losses(images, target_z)["loss"]

    @jax.jit
    def grads(params):
        target_z = nnx.merge(graphdef, params).embed(images)
        g_params, g_target = jax.grad(loss, argnums=(0, 1))(params, target_z + 0.1)
        # Without a target encoder the targets are the encoder's own embeddings; the gradient must be
        # the one obtained with those embeddings frozen as constants: nothing flows through the target.
        own = jax.grad(lambda p: nnx.merge(graphdef, p).losses(images)["loss"])(params)
        const = jax.grad(loss)(params, jax.lax.stop_gradient(target_z))
        return g_params, g_target, own, const

    g_params, g_target, own, const = grads(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(g_params))
    np.testing.assert_array_equal(np.asarray(g_target), 0.0)
    assert optax.global_norm(g_params) > 0
    for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(const), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_causal_transformer_output_ignores_later_steps(tiny_model):
    graphdef, params = tiny_model
    x = jax.random.normal(jax.random.key(1), (2, TINY.window, TINY.feature_dim))  # one view per sequence
    run = jax.jit(lambda p, x: nnx.merge(graphdef, p).inverse_dynamics(x))
    out, changed = np.split(np.asarray(run(params, jnp.concatenate([x, x.at[:, 2].add(1.0)]))), 2)
    np.testing.assert_allclose(out[:, :2], changed[:, :2], atol=1e-6)
    assert not np.allclose(out[:, 2], changed[:, 2])


def _blob_video(num_frames: int, size: int = 16) -> np.ndarray:
    """A 3×3 white square moving one pixel per frame left→right, bouncing at the edges: [T, H, W, 3]."""
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    span = size - 3
    for t in range(num_frames):
        x = t % (2 * span)
        x = x if x <= span else 2 * span - x
        frames[t, 6:9, x : x + 3] = 255
    return frames


def test_loss_decreases_on_a_moving_blob(tiny_model):
    graphdef, params = tiny_model
    video = _blob_video(40)
    mirrored = video[:, :, ::-1]  # a second view of the same motion
    starts = np.arange(len(video) - TINY.window + 1)
    tx = optax.chain(optax.clip_by_global_norm(0.1), optax.adamw(3e-3, weight_decay=0.0))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images):
        loss, grads = jax.value_and_grad(lambda p: nnx.merge(graphdef, p).losses(images)["loss"])(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(0)
    losses = []
    for _ in range(60):
        idx = rng.choice(starts, 16)[:, None] + np.arange(TINY.window)[None]
        params, opt_state, loss = step(params, opt_state, {"agentview": video[idx], "wrist": mirrored[idx]})
        losses.append(float(loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses


@pytest.mark.parametrize("features", ["before_output_norm", "output"])
def test_losses_see_the_features_the_config_names(features):
    config = DynamoConfig(**{**TINY.__dict__, "cameras": ("a",), "dynamics_features": features})
    model = DynaMo(config, rngs=nnx.Rngs(0))
    frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 4, 16, 16, 3)), jnp.uint8)
    z = model.embed({"a": frames})
    flat = frames.reshape(8, 16, 16, 3)
    pre = model.encoder.features_before_norm(flat).reshape(z.shape)
    # The output LayerNorm gives each embedding zero mean and unit variance over features; the raw
    # features before it do not.
    expected = pre if features == "before_output_norm" else model.encoder(flat).reshape(z.shape)
    np.testing.assert_allclose(z, expected, rtol=1e-6)
    assert not np.allclose(pre, model.encoder(flat).reshape(z.shape), atol=1e-3)


def test_dynamics_features_is_validated():
    with pytest.raises(ValueError, match="dynamics_features"):
        DynamoConfig(**{**TINY.__dict__, "dynamics_features": "pre"})


def test_forward_dropout_acts_only_with_a_key():
    config = DynamoConfig(**{**TINY.__dict__, "forward_dropout": 0.5})
    model = DynaMo(config, rngs=nnx.Rngs(0))
    z = jax.random.normal(jax.random.key(0), (2, TINY.window, 2, TINY.feature_dim))
    plain, again = model.predict_next(z)[0], model.predict_next(z)[0]
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(again))
    dropped = model.predict_next(z, jax.random.key(1))[0]
    assert not np.allclose(np.asarray(plain), np.asarray(dropped))
    # The default has no dropout: a key changes nothing.
    default = DynaMo(TINY, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(
        np.asarray(default.predict_next(z)[0]),
        np.asarray(default.predict_next(z, jax.random.key(1))[0]),
        atol=1e-6,
    )


def test_defaults_are_the_published_dynamo():
    c = DynamoConfig()
    assert (c.encoder, c.feature_dim, c.views, c.dynamics, c.stop_gradient) == (
        "resnet18_avgpool",
        512,
        "per_view",
        "inverse_forward",
        True,
    )
    with pytest.raises(ValueError, match="feature_dim must be 512"):
        DynamoConfig(feature_dim=64)
    with pytest.raises(ValueError, match="views"):
        DynamoConfig(**{**TINY.__dict__, "views": "stacked"})
