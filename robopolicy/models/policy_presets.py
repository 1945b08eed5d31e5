"""Named policy configurations: `POLICY_PRESETS[name]`.

- `quickstart`: the CPU-sized flow policy of the quickstart (small CNN, residual MLP, flow matching,
  To=1, H=16, 4 actions executed per chunk).
- `diffusion_policy`: Diffusion Policy's image setting: ResNet-18 with GroupNorm and spatial softmax
  per camera, random shift ±4 px (crop 76 of 84), To=2, H=16, 8 actions executed, DDPM training with
  100 steps and DDIM inference in 10, transformer denoiser.
- `ptp_long_context`: the Past-Token Prediction long-context head trained end to end: To=16, H=32, one
  action executed per inference, transformer 8×4×256 with attention dropout 0.3, DDPM 100/100,
  ε-prediction, loss on every past token; frames spaced to span about half an episode (frame_stride 0:
  chosen from the dataset, every 20 steps on the paper's long tasks).
- `ptp_stage2`: the same head on cached per-frame embeddings (multistage step 3): no image encoder;
  the batch carries `embeddings` {camera: [B, To, feature_dim]} written by the stage-1 encoder.
"""

from __future__ import annotations

import dataclasses

from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy_config import PolicyConfig

QUICKSTART = PolicyConfig(
    image_size=64,
    encoder_channels=(16, 32, 64),
    feature_dim=64,
    pooling="flatten",
    obs_horizon=1,
    image_shift=4,
    denoiser_width=512,
    n_action_steps=4,
)

DIFFUSION_POLICY = PolicyConfig(
    image_size=84,
    encoder="resnet18",
    feature_dim=64,
    num_keypoints=32,
    image_shift=4,
    obs_horizon=2,
    action_horizon=16,
    n_action_steps=8,
    denoiser="transformer",
    head="diffusion",
    diffusion_train_steps=100,
    diffusion_sampler="ddim",
    diffusion_inference_steps=10,
)

PTP_LONG_CONTEXT = dataclasses.replace(
    DIFFUSION_POLICY,
    obs_horizon=16,
    action_horizon=32,
    n_action_steps=1,
    diffusion_sampler="ddpm",
    diffusion_inference_steps=100,
    past_steps=PAST_STEPS_ALL,
    frame_stride=0,
)

PTP_STAGE2 = dataclasses.replace(PTP_LONG_CONTEXT, encoder="cached")

# The smallest transformer denoiser with a DDIM-sampled diffusion head, for tests and smoke recipes:
# `PolicyConfig(**TINY_TRANSFORMER_DDIM, ...)`.
TINY_TRANSFORMER_DDIM: dict[str, object] = dict(
    denoiser="transformer",
    transformer_dim=16,
    transformer_layers=1,
    transformer_heads=2,
    head="diffusion",
    diffusion_train_steps=10,
    diffusion_sampler="ddim",
    diffusion_inference_steps=2,
)

POLICY_PRESETS: dict[str, PolicyConfig] = {
    "quickstart": QUICKSTART,
    "diffusion_policy": DIFFUSION_POLICY,
    "ptp_long_context": PTP_LONG_CONTEXT,
    "ptp_stage2": PTP_STAGE2,
}
