"""Configuration of a flow-matching vision policy, with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PolicyConfig:
    """Shapes and sizes of a visuomotor flow-matching policy.

    Attributes:
        cameras: camera names, one CNN encoder each.
        image_size: square input resolution in pixels.
        state_dim: proprio dimension (joint positions + fingers).
        action_dim: action dimension (7 for Δpos, Δrot, gripper).
        obs_horizon: To, the number of observation steps the policy sees.
        action_horizon: H, the chunk length; the chunk starts at the first observation step.
        n_action_steps: how many actions of each chunk are executed before replanning, counted
            from index To−1 (the current step).
        encoder_channels: output channels of the stride-2 conv stages of each camera encoder.
        feature_dim: per-camera (and per-proprio) feature size after the encoder.
        pooling: how a camera's last feature map becomes a vector: "spatial_softmax" (expected image
            coordinates per channel, as Diffusion Policy) or "flatten" (all positions into a linear layer).
        denoiser_width, denoiser_depth: residual MLP denoiser size.
        image_shift: training-time random shift of every image by up to this many pixels (0: off).
        flow_steps: Euler steps at inference (openpi uses 10).
        time_beta: (α, β) of the Beta distribution training times are drawn from (openpi: 1.5, 1).
    """

    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    state_dim: int = 9
    action_dim: int = 7
    obs_horizon: int = 2
    action_horizon: int = 16
    n_action_steps: int = 8
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 64
    pooling: Literal["spatial_softmax", "flatten"] = "spatial_softmax"
    denoiser_width: int = 512
    denoiser_depth: int = 3
    image_shift: int = 4
    flow_steps: int = 10
    time_beta: tuple[float, float] = field(default=(1.5, 1.0))

    @classmethod
    def from_dict(cls, d: dict) -> PolicyConfig:
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"PolicyConfig: {what}")

        need(
            len(self.cameras) >= 1 and len(set(self.cameras)) == len(self.cameras),
            "cameras must be unique and non-empty",
        )
        need(self.pooling in ("spatial_softmax", "flatten"), f"unknown pooling {self.pooling!r}")
        need(self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}")
        need(
            self.image_size % (2 ** len(self.encoder_channels)) == 0,
            f"image_size {self.image_size} must be divisible by 2**{len(self.encoder_channels)} (one halving per conv stage)",
        )
        need(self.state_dim > 0 and self.action_dim > 0, "state_dim and action_dim must be positive")
        need(self.obs_horizon >= 1, f"obs_horizon must be >= 1, got {self.obs_horizon}")
        need(
            self.action_horizon >= self.obs_horizon,
            f"action_horizon ({self.action_horizon}) must be >= obs_horizon ({self.obs_horizon})",
        )
        need(
            1 <= self.n_action_steps <= self.action_horizon - self.obs_horizon + 1,
            f"n_action_steps must be in [1, action_horizon - obs_horizon + 1], got {self.n_action_steps}",
        )
        need(all(c > 0 for c in self.encoder_channels), "encoder_channels must be positive")
        need(
            0 <= self.image_shift < self.image_size // 4,
            f"image_shift must be in [0, image_size/4), got {self.image_shift}",
        )
        need(self.flow_steps >= 1, f"flow_steps must be >= 1, got {self.flow_steps}")
        need(self.denoiser_depth >= 1 and self.denoiser_width >= 8, "denoiser too small")
        need(all(b > 0 for b in self.time_beta), "time_beta parameters must be positive")
