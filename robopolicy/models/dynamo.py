"""DynaMo: self-supervised latent-dynamics pretraining of a visual encoder (Cui et al. 2024).

Over a window of W frames with V views each, one shared encoder gives z [B, W, V, E]. By default
(`views="per_view"`, the reference's `separate_single_views`) each view is its own sequence
[B·V, W, E] for both dynamics models, with its own latent action, and the loss is averaged over
views; `views="concatenated"` concatenates the views per step into one sequence [B, W, V·E] with one
latent action for all of them (see `dynamo_loss.to_steps`):

- inverse dynamics: a causal transformer over the window; its output at step t+1, which has seen
  frames 0…t+1, is the latent transition l_{t+1} [latent_dim] from frame t to t+1. The small
  bottleneck keeps it from copying z_{t+1} through.
- forward dynamics: a causal transformer over steps t = 0…W−2 taking (z_t, l_{t+1}) and predicting
  z_{t+1}, with dropout while pretraining when `forward_dropout` > 0.

Loss: 1 − cos(pred, stopgrad(target)) averaged over steps, views and batch, plus
`covariance_weight · mean(offdiag(cov(z))²)` over all B·W·V embeddings. Targets are the encoder's own
embeddings, or an EMA copy's when `ema_target` is set. No actions and no augmentations anywhere.
The encoder's BatchNorm layers (if any) use running statistics unless the caller switches them to
batch statistics, as the pretraining step does (`nnx.view(model, use_running_average=False)`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

from robopolicy.models import dynamo_loss
from robopolicy.models.causal_transformer import CausalTransformer
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.dynamo_loss import cosine_prediction_loss, covariance_regularizer
from robopolicy.models.embedding_collapse import effective_rank, normalized_std
from robopolicy.models.image_encoder import make_image_encoder

WindowImages = dict[str, UInt8[Array, "b w h w2 3"]]


def make_encoder(config: DynamoConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    """The encoder a policy with `config.policy_encoder_fields()` would build (same parameter tree)."""
    return make_image_encoder(config, rngs=rngs)


def embed_views(
    encoder: nnx.Module, images: WindowImages, cameras: tuple[str, ...], before_norm: bool = False
) -> Float[Array, "b w v e"]:
    """Every frame of every view through one encoder: {camera: [B, W, H, W, 3]} → [B, W, V, E].

    `before_norm`: the encoder's features before its output norm, if it has one (the features the
    DynaMo losses see); otherwise its output, as a policy sees it.
    """
    first = images[cameras[0]]
    b, w = first.shape[:2]
    stacked = jnp.stack([images[cam] for cam in cameras], axis=2)  # [B, W, V, H, W, 3]
    flat = stacked.reshape(b * w * len(cameras), *stacked.shape[3:])
    z = encoder.features_before_norm(flat) if before_norm else encoder(flat)
    return z.reshape(b, w, len(cameras), -1)


class DynaMo(nnx.Module):
    def __init__(self, config: DynamoConfig, *, rngs: nnx.Rngs) -> None:
        c = self.config = config
        step_dim = c.feature_dim * (1 if c.views == "per_view" else len(c.cameras))
        self.encoder = make_encoder(c, rngs=rngs)
        size = (c.transformer_dim, c.transformer_layers, c.transformer_heads)
        self.inverse_dynamics = (
            CausalTransformer(step_dim, c.latent_dim, *size, c.window, rngs=rngs)
            if c.dynamics != "forward_only"
            else None
        )
        if c.dynamics == "inverse_only":
            self.forward_dynamics = nnx.Linear(c.latent_dim, step_dim, rngs=rngs)
        else:
            latent_in = c.latent_dim if c.dynamics == "inverse_forward" else 0
            self.forward_dynamics = CausalTransformer(
                step_dim + latent_in, step_dim, *size, c.window - 1, c.forward_dropout, rngs=rngs
            )

    def embed(self, images: WindowImages) -> Float[Array, "b w v e"]:
        return embed_views(
            self.encoder, images, self.config.cameras, self.config.dynamics_features == "before_output_norm"
        )

    def predict_next(
        self, z: Float[Array, "b w v e"], key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, "b w1 v e"], Float[Array, "n w1 l"]]:
        """Predicted z_{1…W−1} [B, W−1, V, E] and the latent actions l_{1…W−1} [N, W−1, L] (N = B·V
        per view, B concatenated). `key`: the forward model's dropout (training only)."""
        c = self.config
        if c.dynamics == "inverse_only":
            forward = self.forward_dynamics
        else:
            forward = lambda x: self.forward_dynamics(x, key)  # noqa: E731
        return dynamo_loss.predict_next(z, self.inverse_dynamics, forward, c.views, c.dynamics)

    def losses(
        self,
        images: WindowImages,
        target_z: Float[Array, "b w v e"] | None = None,
        key: PRNGKeyArray | None = None,
    ) -> dict[str, Float[Array, ""]]:
        """{"loss", "dynamics", "covariance", "embedding_std", "normalized_std", "effective_rank"}.

        The last three are not part of the loss; they watch for collapse, under which the cosine
        loss would also go to 0. `embedding_std` (mean over dimensions of the raw std over all
        embeddings) shrinks whenever the encoder scales its output down, which the covariance term
        rewards, so read collapse off the scale-free `normalized_std` and `effective_rank`
        (`robopolicy.models.embedding_collapse`).

        `target_z`: embeddings of the same windows by a target (EMA) encoder; None uses this
        encoder's own embeddings. Either way the target is stop-gradiented (unless the config's
        `stop_gradient` is off). `key`: forward-dynamics dropout; None runs without.
        """
        z = self.embed(images)
        pred, _ = self.predict_next(z, key)
        target = z if target_z is None else target_z
        dynamics = cosine_prediction_loss(pred, target[:, 1:], stop_gradient=self.config.stop_gradient)
        flat = z.reshape(-1, z.shape[-1])
        covariance = covariance_regularizer(flat)
        watched = jax.lax.stop_gradient(flat)
        return {
            "loss": dynamics + self.config.covariance_weight * covariance,
            "dynamics": dynamics,
            "covariance": covariance,
            "embedding_std": jnp.mean(jnp.std(watched, axis=0)),
            "normalized_std": normalized_std(watched),
            "effective_rank": effective_rank(watched),
        }
