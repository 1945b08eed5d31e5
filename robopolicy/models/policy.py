"""A general visuomotor policy: image encoders (or cached embeddings) + proprio + optional language →
a denoiser (residual MLP or transformer) → an action head (flow matching or DDPM/DDIM), with
Past-Token Prediction in the loss and self-verification at inference.

`loss(images, state, actions, key)` and `sample(images, state, key)` take keyword-only extras
(validity masks, instruction, cached embeddings); `loss_batch` / `sample_batch` read the
training-batch dict of the data pipeline. Everything works in normalized action and state space.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, UInt8

from robopolicy.errors import UserError
from robopolicy.models import diffusion, flow_matching, past_tokens, self_verification
from robopolicy.models.augment import random_shift
from robopolicy.models.image_encoder import make_image_encoder
from robopolicy.models.mlp_denoiser import MLPDenoiser
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.precision import compute_dtype, to_float32
from robopolicy.models.text_encoder import WordEmbeddingTextEncoder
from robopolicy.models.transformer_denoiser import TransformerDenoiser

Images = dict[str, UInt8[Array, "b to h w 3"]]
Embeddings = dict[str, Float[Array, "b to d"]]
# Conditioning handed to the denoiser: {"vector": [B, C]} for the MLP; {"tokens": [B, To, D],
# "valid": [B, To], optional "prefix": [B, P, D]} for the transformer. A dict so it tiles as a pytree.
Conditioning = dict[str, Array]
SHARED = "shared"  # key of the single encoder when `shared_encoder` is set


@functools.lru_cache(maxsize=8)
def _betas(num_steps: int) -> np.ndarray:
    return diffusion.squaredcos_cap_v2_betas(num_steps)


class Policy(nnx.Module):
    def __init__(self, config: PolicyConfig, *, rngs: nnx.Rngs) -> None:
        c = self.config = config
        # Layers compute in `dtype`; parameters stay float32 (flax's default param_dtype).
        dtype = self.dtype = compute_dtype(c.compute_dtype)
        if c.encoder == "cached":
            self.encoders = None
        else:
            names = (SHARED,) if c.shared_encoder else c.cameras
            self.encoders = nnx.Dict({name: make_image_encoder(c, dtype=dtype, rngs=rngs) for name in names})
        self.state_proj = nnx.Linear(c.state_dim, c.feature_dim, dtype=dtype, rngs=rngs)
        step_dim = c.feature_dim * (len(c.cameras) + 1)
        text_dim = c.transformer_dim if c.denoiser == "transformer" else c.feature_dim
        if c.denoiser == "mlp":
            cond_dim = c.obs_horizon * step_dim + (text_dim if c.text != "none" else 0)
            self.denoiser = MLPDenoiser(
                c.action_horizon,
                c.action_dim,
                cond_dim,
                c.denoiser_width,
                c.denoiser_depth,
                dtype=dtype,
                rngs=rngs,
            )
            self.obs_proj = None
        else:
            self.obs_proj = nnx.Linear(step_dim, c.transformer_dim, dtype=dtype, rngs=rngs)
            self.denoiser = TransformerDenoiser(
                c.action_horizon,
                c.action_dim,
                c.obs_horizon,
                c.transformer_dim,
                c.transformer_layers,
                c.transformer_heads,
                c.attention_dropout,
                dtype=dtype,
                rngs=rngs,
            )
        self.text_encoder = (
            WordEmbeddingTextEncoder(c.vocab_size, text_dim, c.text, dtype=dtype, rngs=rngs)
            if c.text != "none"
            else None
        )

    # --- observations -------------------------------------------------------------------------

    def embed_frames(self, frames: dict[str, UInt8[Array, "n h w 3"]]) -> dict[str, Float[Array, "n f"]]:
        """Per-frame camera features, no augmentation: what an embedding cache stores for stage 2.

        A `encoder="cached"` policy fed these as `embeddings` sees exactly what this policy's
        encoders produce.
        """
        if self.encoders is None:
            raise UserError("policy with encoder='cached' has no image encoder to embed frames with")
        c = self.config
        return {cam: self.encoders[SHARED if c.shared_encoder else cam](frames[cam]) for cam in c.cameras}

    def encode_steps(
        self,
        images: Images | None,
        state: Float[Array, "b to s"],
        augment_key: PRNGKeyArray | None = None,
        embeddings: Embeddings | None = None,
    ) -> Float[Array, "b to f"]:
        """Per observation step: every camera's features, then the projected proprio: [B, To, (n+1)·F].

        Image encoders run on all To frames at once; with `augment_key` the images are randomly
        shifted first (training only). With encoder "cached", `embeddings` stand in for the encoders.
        """
        c = self.config
        b, to = state.shape[:2]
        feats = []
        for i, cam in enumerate(c.cameras):
            if self.encoders is None:
                if embeddings is None or cam not in embeddings:
                    raise UserError(
                        f"policy with encoder='cached': batch has no embeddings for camera {cam!r}"
                    )
                emb = embeddings[cam]
                if emb.shape != (b, to, c.feature_dim):
                    raise UserError(
                        f"embeddings[{cam!r}]: shape {tuple(emb.shape)}, expected {(b, to, c.feature_dim)} (feature_dim)"
                    )
                feats.append(emb.astype(self.dtype))
                continue
            if images is None or cam not in images:
                raise UserError(f"policy input has no images for camera {cam!r}")
            frames = images[cam]
            flat = frames.reshape(b * to, *frames.shape[2:])
            if augment_key is not None:
                flat = random_shift(flat, jax.random.fold_in(augment_key, i), c.image_shift)
            encoder = self.encoders[SHARED if c.shared_encoder else cam]
            feats.append(encoder(flat).reshape(b, to, -1))
        feats.append(self.state_proj(state))
        return jnp.concatenate(feats, axis=-1)

    def encode(
        self,
        images: Images | None,
        state: Float[Array, "b to s"],
        augment_key: PRNGKeyArray | None = None,
        *,
        obs_valid: Bool[Array, "b to"] | None = None,
        instruction: Int[Array, "b l"] | None = None,
        embeddings: Embeddings | None = None,
    ) -> Conditioning:
        """Observation history (and instruction) → the denoiser's conditioning."""
        c = self.config
        steps = self.encode_steps(images, state, augment_key, embeddings)
        b, to = steps.shape[:2]
        text = None
        if self.text_encoder is not None:
            if instruction is None:
                raise UserError(f"policy with text={c.text!r} needs the batch's 'instruction' word ids")
            text = self.text_encoder(instruction)
        if self.obs_proj is None:
            parts = [steps.reshape(b, -1)] + ([text] if text is not None else [])
            return {"vector": jnp.concatenate(parts, axis=-1)}
        cond = {
            "tokens": self.obs_proj(steps),
            "valid": jnp.ones((b, to), bool) if obs_valid is None else obs_valid.astype(bool),
        }
        if text is not None:
            cond["prefix"] = text[:, None]
        return cond

    def denoise(
        self,
        x: Float[Array, "b h a"],
        t: Float[Array, " b"],
        cond: Conditioning,
        dropout_key: PRNGKeyArray | None = None,
    ) -> Float[Array, "b h a"]:
        """The network output (flow velocity or diffusion ε) at noise level t ∈ [0, 1], float32.

        Returned as float32 whatever the compute dtype, so the loss (squared error and its masked
        mean over the batch) and the sampler's integration run in float32.
        """
        if self.obs_proj is None:
            return to_float32(self.denoiser(x, t, cond["vector"]))
        return to_float32(self.denoiser(x, t, cond["tokens"], cond["valid"], cond.get("prefix"), dropout_key))

    # --- training -----------------------------------------------------------------------------

    def loss_token_mask(self, action_valid: Bool[Array, "b h"] | None = None) -> Float[Array, "*b h"]:
        """Chunk positions the loss covers: [To−1−k:] (PTP) or [To−1:], and `action_valid` if given."""
        c = self.config
        return past_tokens.loss_token_mask(c.obs_horizon, c.action_horizon, c.past_steps, action_valid)

    def loss(
        self,
        images: Images | None,
        state: Float[Array, "b to s"],
        actions: Float[Array, "b h a"],
        key: PRNGKeyArray,
        *,
        action_valid: Bool[Array, "b h"] | None = None,
        obs_valid: Bool[Array, "b to"] | None = None,
        instruction: Int[Array, "b l"] | None = None,
        embeddings: Embeddings | None = None,
    ) -> Float[Array, ""]:
        """Flow-matching or ε-prediction loss on a batch of normalized windows (uniform masked MSE).

        Without `action_valid`, positions padded past an episode's end count (they repeat the final
        at-rest action, teaching the policy to stay put, as Diffusion Policy does).
        """
        c = self.config
        noise_level_key, noise_key, augment_key = jax.random.split(key, 3)
        dropout_key = jax.random.fold_in(key, 3) if c.attention_dropout > 0 else None
        b = actions.shape[0]
        noise = jax.random.normal(noise_key, actions.shape, actions.dtype)
        if c.head == "flow":
            alpha, beta = c.time_beta
            t = flow_matching.sample_time(noise_level_key, b, alpha, beta)
            x = flow_matching.interpolate(actions, noise, t)
            target = flow_matching.target_velocity(actions, noise)
        else:
            k = diffusion.sample_timesteps(noise_level_key, b, c.diffusion_train_steps)
            alpha_bar = diffusion.alphas_cumprod(_betas(c.diffusion_train_steps))
            x = diffusion.add_noise(actions, noise, k, alpha_bar)
            t = k.astype(jnp.float32) / c.diffusion_train_steps
            target = noise
        cond = self.encode(
            images, state, augment_key, obs_valid=obs_valid, instruction=instruction, embeddings=embeddings
        )
        predicted = self.denoise(x, t, cond, dropout_key)
        return past_tokens.masked_token_mse(predicted, target, self.loss_token_mask(action_valid))

    def loss_batch(self, batch: dict, key: PRNGKeyArray) -> Float[Array, ""]:
        """`loss` on a training-batch dict (images, state, action, and the optional keys)."""
        return self.loss(
            batch.get("images"),
            batch["state"],
            batch["action"],
            key,
            action_valid=batch.get("action_valid"),
            obs_valid=batch.get("obs_valid"),
            instruction=batch.get("instruction"),
            embeddings=batch.get("embeddings"),
        )

    # --- inference ----------------------------------------------------------------------------

    def sample_from(self, cond: Conditioning, key: PRNGKeyArray) -> Float[Array, "b h a"]:
        """One normalized chunk per conditioning row, denoised from Gaussian noise by the head's sampler."""
        c = self.config
        b = jax.tree.leaves(cond)[0].shape[0]
        noise_key, step_key = jax.random.split(key) if c.head == "diffusion" else (key, key)
        noise = jax.random.normal(noise_key, (b, c.action_horizon, c.action_dim))
        if c.head == "flow":
            return flow_matching.euler_sample(lambda x, t: self.denoise(x, t, cond), noise, c.flow_steps)
        betas = _betas(c.diffusion_train_steps)

        def eps_fn(x: Float[Array, "b h a"], k: Int[Array, " b"]) -> Float[Array, "b h a"]:
            return self.denoise(x, k.astype(jnp.float32) / c.diffusion_train_steps, cond)

        if c.diffusion_sampler == "ddpm":
            return diffusion.ddpm_sample(eps_fn, noise, step_key, betas, c.clip_sample)
        return diffusion.ddim_sample(eps_fn, noise, betas, c.diffusion_inference_steps, c.clip_sample)

    def sample(
        self,
        images: Images | None,
        state: Float[Array, "b to s"],
        key: PRNGKeyArray,
        *,
        obs_valid: Bool[Array, "b to"] | None = None,
        instruction: Int[Array, "b l"] | None = None,
        embeddings: Embeddings | None = None,
    ) -> Float[Array, "b h a"]:
        """Draw one normalized action chunk per batch element."""
        cond = self.encode(images, state, obs_valid=obs_valid, instruction=instruction, embeddings=embeddings)
        return self.sample_from(cond, key)

    def sample_batch(self, batch: dict, key: PRNGKeyArray) -> Float[Array, "b h a"]:
        """`sample` on a batch dict (the `action` keys, if present, are ignored)."""
        return self.sample(
            batch.get("images"),
            batch["state"],
            key,
            obs_valid=batch.get("obs_valid"),
            instruction=batch.get("instruction"),
            embeddings=batch.get("embeddings"),
        )

    def sample_candidates(self, cond: Conditioning, key: PRNGKeyArray, num: int) -> Float[Array, "b n h a"]:
        """`num` chunks per batch element in one batched pass; observations are encoded only once.

        Candidate i denoises from `self_verification.candidate_key(key, i)`: candidate 0 from `key`
        itself, so it is the chunk `sample_from(cond, key)` draws, whatever `num` is.
        """
        if num == 1:
            return self.sample_from(cond, key)[:, None]
        keys = jnp.stack([self_verification.candidate_key(key, i) for i in range(num)])
        chunks = jax.vmap(lambda k: self.sample_from(cond, k))(keys)  # [n, b, h, a]
        return jnp.swapaxes(chunks, 0, 1)

    def sample_verified(
        self,
        images: Images | None,
        state: Float[Array, "b to s"],
        key: PRNGKeyArray,
        history: Float[Array, "b p a"],
        executed: Int[Array, " b"],
        *,
        num_candidates: int | None = None,
        verification: self_verification.Verification | None = None,
        obs_valid: Bool[Array, "b to"] | None = None,
        instruction: Int[Array, "b l"] | None = None,
        embeddings: Embeddings | None = None,
    ) -> self_verification.Selection:
        """Self-verification: N candidates; keep the one whose past tokens match the executed actions best.

        `history` holds the last (To−1)·frame_stride executed actions (normalized, oldest first: steps
        t−(To−1)·stride … t−1); the past tokens are compared with every stride-th of them, the steps
        they stand for. `executed` says per row how many actions have been executed so far: the
        tokens whose steps lie further back are not compared (`verification.history` says how), and
        a row with none to compare takes candidate 0. `verification` (default: `Verification()`,
        equal weights, partial history, by score) says how candidates are scored and chosen. With one
        candidate the history is not read.
        Returns the chosen chunk, its index, every candidate's score and the number of compared
        tokens (`self_verification.Selection`).
        """
        c = self.config
        num = c.num_candidates if num_candidates is None else num_candidates
        if c.frame_stride < 1:
            raise UserError(
                "policy config has frame_stride 0 (chosen from the dataset when training starts); "
                "give the stride it was trained with"
            )
        if history.shape[1:] != (c.verification_history_length, c.action_dim):
            raise UserError(
                f"self-verification history has shape {tuple(history.shape)}, expected "
                f"[B, {c.verification_history_length}, {c.action_dim}]: the last (To−1)·frame_stride "
                "executed actions"
            )
        verification = verification or self_verification.Verification()
        try:
            verification.check_action_dim(c.action_dim)
        except ValueError as e:
            raise UserError(str(e)) from None
        cond = self.encode(images, state, obs_valid=obs_valid, instruction=instruction, embeddings=embeddings)
        candidates = self.sample_candidates(cond, key, num)
        b = candidates.shape[0]
        if num == 1:
            zeros = jnp.zeros(b, jnp.int32)
            return self_verification.Selection(candidates[:, 0], zeros, jnp.zeros((b, 1)), zeros)
        return self_verification.select_candidate(
            candidates,
            history,
            executed,
            stride=c.frame_stride,
            start=c.past_token_start,
            verification=verification,
            key=key,
        )
