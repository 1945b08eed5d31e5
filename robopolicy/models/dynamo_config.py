"""Configuration of a DynaMo model: the visual encoder and the two latent-dynamics transformers.

Defaults follow DynaMo (Cui et al. 2024): a randomly initialised ResNet-18 giving one 512-d
embedding per frame and per view, inverse- and forward-dynamics causal transformers of 6 layers, 6
heads and width 120, a window of 5 frames, covariance weight 0.04, and no EMA target (the reference
uses one for a single environment only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DynamoConfig:
    """Shapes and loss weights of a DynaMo model.

    Attributes:
        cameras: views; one shared encoder embeds every view of every frame.
        image_size: square input resolution in pixels (taken from the dataset when pretraining).
        encoder: "resnet18" (ResNet-18 with GroupNorm and a spatial-softmax head) or "cnn" (the small
            ConvEncoder, for CPU runs). Both are the classes a policy builds, so weights transplant.
        feature_dim: embedding size per view (512 for ResNet-18 as in the paper).
        encoder_channels, pooling: the small CNN's conv stages and head (ignored for "resnet18").
        num_keypoints: spatial-softmax keypoints of the ResNet-18 head.
        window: frames per training window.
        latent_dim: the inverse-dynamics bottleneck, about the state dimension (paper: 8–64).
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
    encoder: Literal["resnet18", "cnn"] = "resnet18"
    feature_dim: int = 512
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    pooling: Literal["spatial_softmax", "flatten"] = "spatial_softmax"
    num_keypoints: int = 32
    window: int = 5
    latent_dim: int = 16
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
        need(
            self.encoder in ("resnet18", "cnn"), f"encoder must be 'resnet18' or 'cnn', got {self.encoder!r}"
        )
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
