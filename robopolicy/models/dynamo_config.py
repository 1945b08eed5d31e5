"""Configuration of a DynaMo model: the visual encoder and the two latent-dynamics transformers.

Defaults follow DynaMo (Cui et al. 2024) and its reference implementation (jeffacce/dynamo_ssl,
`configs/train_libero_goal.yaml`): a randomly initialised torchvision-style ResNet-18 (BatchNorm,
global average pooling) giving one 512-d embedding per frame and per view, inverse and forward
dynamics run per view (`separate_single_views`), causal transformers of 6 layers, 6 heads and width
120, a latent action of 32, a window of 5 frames, covariance weight 0.04, no forward-dynamics
dropout and no EMA target (the reference uses one for block pushing only).
`DYNAMO_ENVIRONMENTS` holds the reference's settings for its other environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from robopolicy.models.image_encoder import ImageEncoderKind, image_encoder_problem


@dataclass(frozen=True)
class DynamoConfig:
    """Shapes and loss weights of a DynaMo model.

    Attributes:
        cameras: views; one shared encoder embeds every view of every frame.
        image_size: square input resolution in pixels (taken from the dataset when pretraining).
        encoder: "resnet18_avgpool" (torchvision's ResNet-18: BatchNorm, global average pooling, 512-d;
            the paper's), "resnet18" (ResNet-18 with GroupNorm and a spatial-softmax head) or "cnn"
            (the small ConvEncoder, for CPU runs). All are the classes a policy builds
            (`robopolicy.models.image_encoder`), so weights transplant.
        feature_dim: embedding size per view (512, fixed, for "resnet18_avgpool").
        encoder_channels, pooling: the small CNN's conv stages and head (ignored for "resnet18").
        num_keypoints: spatial-softmax keypoints of the ResNet-18 head.
        window: frames per training window.
        views: "per_view" (the reference's `separate_single_views`): one shared encoder, then the
            inverse and forward models run on each view's embeddings alone, each view with its own
            latent action, and the loss is averaged over views. "concatenated": the views'
            embeddings concatenated per step, one latent action for all of them.
        latent_dim: the inverse-dynamics bottleneck, about the state dimension (reference: 8–64).
        dynamics: which models predict the next embedding. "inverse_forward" (DynaMo); the
            ablations "forward_only" (no inverse model: the forward model sees z_0…z_t and no latent
            action) and "inverse_only" (no forward model: a linear layer maps the latent action
            l_{t+1} alone to the predicted z_{t+1}).
        forward_dropout: dropout rate inside the forward-dynamics transformer while pretraining.
        stop_gradient: stop the gradient through the prediction targets (off only as an ablation).
        transformer_dim, transformer_layers, transformer_heads: size of both dynamics transformers.
        covariance_weight: weight of mean(offdiag(cov(z))²) in the loss.
        ema_target: embed prediction targets with an EMA copy of the encoder instead of the encoder
            itself (with a stop-gradient either way).
        ema_start: EMA decay at step 0, cosine-annealed to 1 at the last step.
        dynamics_features: which features the losses see. "output" (default): the encoder's output,
            as a policy sees it. "before_output_norm": the small CNN's features before its output
            LayerNorm (ResNet-18 has no output norm, so the two are the same for it). On the
            normalised output the embeddings drift towards one shared direction (held-out normalised
            std 0.63 → 0.17 in 300 steps on 50 cube_on_plate demos); before the norm they do not
            (0.60), but the probes gain less (state MSE 0.54 vs 0.40) and policies on the frozen
            features did no better (benchmarks/RESULTS.md, "DynaMo collapse" and the three-encoder
            experiment), so the default stays on the output.
    """

    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    encoder: ImageEncoderKind = "resnet18_avgpool"
    feature_dim: int = 512
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    pooling: Literal["spatial_softmax", "flatten"] = "spatial_softmax"
    num_keypoints: int = 32
    window: int = 5
    views: Literal["per_view", "concatenated"] = "per_view"
    latent_dim: int = 32
    dynamics: Literal["inverse_forward", "forward_only", "inverse_only"] = "inverse_forward"
    forward_dropout: float = 0.0
    stop_gradient: bool = True
    transformer_dim: int = 120
    transformer_layers: int = 6
    transformer_heads: int = 6
    covariance_weight: float = 0.04
    ema_target: bool = False
    ema_start: float = 0.99
    dynamics_features: Literal["before_output_norm", "output"] = "output"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DynamoConfig:
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"DynamoConfig: {what}")

        need(
            len(self.cameras) >= 1 and len(set(self.cameras)) == len(self.cameras),
            "cameras must be unique and non-empty",
        )
        problem = image_encoder_problem(self.encoder, self.feature_dim)
        need(problem is None, str(problem))
        need(
            self.views in ("per_view", "concatenated"),
            f"views must be 'per_view' or 'concatenated', got {self.views!r}",
        )
        need(
            self.dynamics in ("inverse_forward", "forward_only", "inverse_only"),
            f"dynamics must be 'inverse_forward', 'forward_only' or 'inverse_only', got {self.dynamics!r}",
        )
        need(0 <= self.forward_dropout < 1, f"forward_dropout must be in [0, 1), got {self.forward_dropout}")
        need(self.pooling in ("spatial_softmax", "flatten"), f"unknown pooling {self.pooling!r}")
        need(self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}")
        need(
            self.encoder != "cnn"
            or (len(self.encoder_channels) >= 1 and self.image_size % 2 ** len(self.encoder_channels) == 0),
            f"image_size {self.image_size} must be divisible by 2**{len(self.encoder_channels)} (one halving per conv stage)",
        )
        need(self.feature_dim >= 2, f"feature_dim must be >= 2, got {self.feature_dim}")
        need(self.window >= 2, f"window must be >= 2 (one transition at least), got {self.window}")
        need(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        need(
            self.transformer_layers >= 1 and self.transformer_heads >= 1,
            "transformer_layers and transformer_heads must be >= 1",
        )
        need(
            self.transformer_dim % self.transformer_heads == 0,
            f"transformer_dim {self.transformer_dim} must be divisible by transformer_heads {self.transformer_heads}",
        )
        need(self.covariance_weight >= 0, f"covariance_weight must be >= 0, got {self.covariance_weight}")
        need(0 < self.ema_start <= 1, f"ema_start must be in (0, 1], got {self.ema_start}")
        need(
            self.dynamics_features in ("before_output_norm", "output"),
            f"dynamics_features must be 'before_output_norm' or 'output', got {self.dynamics_features!r}",
        )

    def policy_encoder_fields(self) -> dict[str, Any]:
        """The PolicyConfig fields that make a policy build this encoder, shared over its cameras.

        `dataclasses.replace(policy_config, **dynamo_config.policy_encoder_fields())` gives a policy
        whose `encoders["shared"]` has exactly this encoder's parameter tree.
        """
        return {
            "cameras": self.cameras,
            "image_size": self.image_size,
            "encoder": self.encoder,
            "feature_dim": self.feature_dim,
            "encoder_channels": self.encoder_channels,
            "pooling": self.pooling,
            "num_keypoints": self.num_keypoints,
            "shared_encoder": True,
        }


TINY_DYNAMO = DynamoConfig(
    image_size=64,
    encoder="cnn",
    feature_dim=64,
    encoder_channels=(16, 32, 64),
    latent_dim=16,
    transformer_dim=64,
    transformer_layers=2,
    transformer_heads=2,
)

# The reference's per-environment settings (jeffacce/dynamo_ssl `configs/`): latent action size
# (`projector/inverse_dynamics_*.yaml` output_dim), window (`train_*.yaml` window_size), transformer
# size, forward-dynamics dropout and EMA target (`ssl/dynamo_*.yaml`). The default is "libero".
DYNAMO_ENVIRONMENTS = {
    # train_libero_goal.yaml, inverse_dynamics_libero.yaml, dynamo_libero.yaml
    "libero": DynamoConfig(),
    # train_pusht.yaml, inverse_dynamics_pusht.yaml, dynamo_pusht.yaml (one view)
    "pusht": DynamoConfig(cameras=("agentview",), latent_dim=8),
    # train_sim_kitchen.yaml, inverse_dynamics_sim_kitchen.yaml, dynamo_sim_kitchen.yaml (one view)
    "sim_kitchen": DynamoConfig(cameras=("agentview",), latent_dim=64, window=2),
    # train_blockpush.yaml, inverse_dynamics_blockpush.yaml, dynamo_blockpush.yaml
    "block_push": DynamoConfig(
        latent_dim=16,
        transformer_dim=72,
        transformer_layers=4,
        transformer_heads=4,
        forward_dropout=0.3,
        ema_target=True,
        ema_start=0.99,
    ),
}
