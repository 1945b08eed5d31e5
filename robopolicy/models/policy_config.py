"""Configuration of a visuomotor policy: encoders, denoiser, action head, Past-Token Prediction.

Every field added after the first release has a default that reproduces the original flow policy,
so `from_dict` still reads the metadata of older checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robopolicy.models.image_encoder import image_encoder_problem
from robopolicy.models.past_tokens import PAST_STEPS_ALL, past_token_start
from robopolicy.models.precision import COMPUTE_DTYPES, ComputeDType


@dataclass(frozen=True)
class PolicyConfig:
    """Shapes and sizes of a visuomotor policy.

    Attributes:
        cameras: camera names, one CNN encoder each.
        image_size: square input resolution in pixels.
        state_dim: proprio dimension (joint positions + fingers).
        action_dim: action dimension (7 for Δpos, Δrot, gripper).
        obs_horizon: To, the number of observation steps the policy sees.
        action_horizon: H, the chunk length; the chunk starts at the first observation step.
        n_action_steps: how many actions of each chunk are executed before replanning, counted
            from index To−1 (the current step).
        frame_stride: steps between observed frames (1: consecutive). The past actions of a chunk are
            spaced alike (see `robopolicy.data.windows`), so training windows, the observation history
            kept at inference and the executed actions self-verification compares the past tokens with
            all follow it. 0: chosen from the dataset when training starts, so that the To frames span
            about half a median episode (`robopolicy.data.windows.frame_stride_for`); the checkpoint
            stores the chosen value.
        encoder_channels: output channels of the stride-2 conv stages of each camera encoder.
        feature_dim: per-camera (and per-proprio) feature size after the encoder.
        pooling: how a camera's last feature map becomes a vector: "spatial_softmax" (expected image
            coordinates per channel, as Diffusion Policy) or "flatten" (all positions into a linear layer).
        denoiser_width, denoiser_depth: residual MLP denoiser size.
        image_shift: training-time random shift of every image by up to this many pixels (0: off).
        flow_steps: Euler steps at inference (openpi uses 10).
        time_beta: (α, β) of the Beta distribution training times are drawn from (openpi: 1.5, 1).
        encoder: "cnn" (the small ConvEncoder), "resnet18" (ResNet-18 with GroupNorm and spatial
            softmax, as Diffusion Policy), "resnet18_avgpool" (torchvision's ResNet-18, BatchNorm in
            eval mode and global average pooling, as DynaMo; feature_dim 512) or "cached" (no image encoder: the batch carries per-frame
            `embeddings` {camera: [B, To, feature_dim]}, as in PTP stage 2).
        shared_encoder: one image encoder for all cameras instead of one per camera.
        num_keypoints: spatial-softmax keypoints of the ResNet-18 head (Diffusion Policy: 32).
        text: instruction conditioning: "none", or learned word embeddings pooled by "mean" or
            "attention" over the batch's `instruction` word ids.
        vocab_size: instruction vocabulary size (ids 0 = padding, 1 = unknown) when text != "none"; 0:
            the training dataset's vocabulary size, set when training starts (the checkpoint stores it).
        denoiser: "mlp" (residual MLP over the flattened chunk) or "transformer" (causal over action
            tokens, cross-attending to observation tokens).
        transformer_dim, transformer_layers, transformer_heads, attention_dropout: transformer size
            (PTP: 256, 8, 4, 0.3).
        head: "flow" (flow matching) or "diffusion" (DDPM, ε-prediction, squaredcos_cap_v2).
        diffusion_train_steps: T, the number of DDPM training timesteps (100).
        diffusion_sampler: "ddpm" (all T steps) or "ddim" (deterministic, `diffusion_inference_steps`).
        diffusion_inference_steps: DDIM steps (ignored by DDPM, which always takes T).
        clip_sample: clip predicted clean actions to [−clip_sample, clip_sample] while denoising
            (0: off); actions are min/max normalized into [−1, 1].
        past_steps: Past-Token Prediction: 0 (off: loss on [To−1:]), k (loss on [To−1−k:]) or
            PAST_STEPS_ALL = −1 (every past token).
        num_candidates: self-verification at inference: sample this many chunks and execute the one
            whose predicted past tokens best match the executed history (1: off).
        compute_dtype: "float32" or "bfloat16": the dtype layers compute in; parameters, optimizer
            state, EMA, losses and sampled actions stay float32 (see `robopolicy.models.precision`).
    """

    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    state_dim: int = 9
    action_dim: int = 7
    obs_horizon: int = 2
    action_horizon: int = 16
    n_action_steps: int = 8
    frame_stride: int = 1
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 64
    pooling: Literal["spatial_softmax", "flatten"] = "spatial_softmax"
    denoiser_width: int = 512
    denoiser_depth: int = 3
    image_shift: int = 4
    flow_steps: int = 10
    time_beta: tuple[float, float] = field(default=(1.5, 1.0))
    encoder: Literal["cnn", "resnet18", "resnet18_avgpool", "cached"] = "cnn"
    shared_encoder: bool = False
    num_keypoints: int = 32
    text: Literal["none", "mean", "attention"] = "none"
    vocab_size: int = 0
    denoiser: Literal["mlp", "transformer"] = "mlp"
    transformer_dim: int = 256
    transformer_layers: int = 8
    transformer_heads: int = 4
    attention_dropout: float = 0.3
    head: Literal["flow", "diffusion"] = "flow"
    diffusion_train_steps: int = 100
    diffusion_sampler: Literal["ddpm", "ddim"] = "ddpm"
    diffusion_inference_steps: int = 10
    clip_sample: float = 1.0
    past_steps: int = 0
    num_candidates: int = 1
    compute_dtype: ComputeDType = "float32"

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
            self.encoder != "cnn" or self.image_size % (2 ** len(self.encoder_channels)) == 0,
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
        need(
            isinstance(self.frame_stride, int) and self.frame_stride >= 0,
            f"frame_stride must be >= 1, or 0 (from the dataset), got {self.frame_stride!r}",
        )
        need(all(c > 0 for c in self.encoder_channels), "encoder_channels must be positive")
        need(
            0 <= self.image_shift < self.image_size // 4,
            f"image_shift must be in [0, image_size/4), got {self.image_shift}",
        )
        need(self.flow_steps >= 1, f"flow_steps must be >= 1, got {self.flow_steps}")
        need(self.denoiser_depth >= 1 and self.denoiser_width >= 8, "denoiser too small")
        need(all(b > 0 for b in self.time_beta), "time_beta parameters must be positive")
        need(
            self.encoder == "cached" or image_encoder_problem(self.encoder, self.feature_dim) is None,
            str(image_encoder_problem(self.encoder, self.feature_dim)),
        )
        need(self.num_keypoints >= 1, f"num_keypoints must be >= 1, got {self.num_keypoints}")
        need(self.text in ("none", "mean", "attention"), f"unknown text pooling {self.text!r}")
        need(
            self.text == "none" or self.vocab_size == 0 or self.vocab_size >= 2,
            f"vocab_size must be 0 (from the dataset) or >= 2 when text={self.text!r}, got {self.vocab_size}",
        )
        need(self.denoiser in ("mlp", "transformer"), f"unknown denoiser {self.denoiser!r}")
        need(
            self.transformer_layers >= 1 and self.transformer_heads >= 1,
            "transformer_layers and transformer_heads must be >= 1",
        )
        need(
            self.transformer_dim % self.transformer_heads == 0 and self.transformer_dim % 2 == 0,
            f"transformer_dim {self.transformer_dim} must be even and divisible by transformer_heads {self.transformer_heads}",
        )
        need(
            0.0 <= self.attention_dropout < 1.0,
            f"attention_dropout must be in [0, 1), got {self.attention_dropout}",
        )
        need(self.head in ("flow", "diffusion"), f"unknown head {self.head!r}")
        need(self.diffusion_train_steps >= 1, "diffusion_train_steps must be >= 1")
        need(
            self.diffusion_sampler in ("ddpm", "ddim"),
            f"unknown diffusion_sampler {self.diffusion_sampler!r}",
        )
        need(
            1 <= self.diffusion_inference_steps <= self.diffusion_train_steps,
            f"diffusion_inference_steps must be in [1, diffusion_train_steps], got {self.diffusion_inference_steps}",
        )
        need(self.clip_sample >= 0, f"clip_sample must be >= 0, got {self.clip_sample}")
        need(
            self.past_steps == PAST_STEPS_ALL or 0 <= self.past_steps <= self.obs_horizon - 1,
            f"past_steps must be 0, k in [1, obs_horizon-1] or {PAST_STEPS_ALL} (all), got {self.past_steps}",
        )
        need(self.num_candidates >= 1, f"num_candidates must be >= 1, got {self.num_candidates}")
        need(
            self.num_candidates == 1 or (self.obs_horizon >= 2 and self.past_steps != 0),
            "num_candidates > 1 (self-verification) needs past_steps != 0 and obs_horizon >= 2",
        )
        need(
            self.compute_dtype in COMPUTE_DTYPES,
            f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {self.compute_dtype!r}",
        )

    @property
    def verification_history_length(self) -> int:
        """Executed actions self-verification looks back over: (To−1)·frame_stride, the span of the
        past tokens (the oldest stands for step t−(To−1)·stride, the newest for t−stride)."""
        return (self.obs_horizon - 1) * self.frame_stride

    @property
    def past_token_start(self) -> int:
        """First chunk index the loss covers: To−1 without PTP, To−1−k with it."""
        return past_token_start(self.obs_horizon, self.past_steps)
