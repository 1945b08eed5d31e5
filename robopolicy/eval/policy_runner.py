"""Running a trained policy in closed loop: observation history in, one action per env step out.

It keeps the last To observations (padding with the first one at episode start, as training
windows do) and a queue of actions: when the queue is empty it samples a chunk and enqueues its
actions To−1 … To−1+n_action_steps−1, i.e. from the current step on.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from jaxtyping import Float

from robopolicy.data.instruction_vocab import InstructionVocab
from robopolicy.data.normalization import NormalizationStats
from robopolicy.data.windows import history_length, observed_frames
from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint


@dataclass(frozen=True)
class LoadedPolicy:
    """Weights, config, statistics and provenance of a trained policy."""

    config: PolicyConfig
    params: nnx.State
    stats: NormalizationStats
    meta: dict[str, Any]
    checkpoint_dir: Path
    step: int
    # A stage-2 (encoder="cached") policy's frozen stage-1 image encoder: frames → embeddings.
    frame_encoder: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load the EMA weights and metadata of the latest checkpoint at `path`: a run folder, its
    `checkpoints/` folder, a step folder or an inference bundle written by `robopolicy export`."""
    directory, step, meta = checkpoint.load_meta(path)
    try:
        config = PolicyConfig.from_dict(meta["policy_config"])
        stats = NormalizationStats.from_dict(meta["stats"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{directory / str(step)}: checkpoint metadata is missing or invalid ({e})") from e
    abstract = nnx.state(nnx.eval_shape(lambda: Policy(config, rngs=nnx.Rngs(0))), nnx.Param)
    mismatches = checkpoint.param_mismatches(directory, step, abstract)
    if mismatches:
        more = f"; and {len(mismatches) - 4} more" if len(mismatches) > 4 else ""
        raise UserError(
            f"{directory / str(step)}: weights do not fit the policy config in its metadata "
            f"({'; '.join(mismatches[:4])}{more})"
        )
    params = checkpoint.restore_policy_params(directory, step, abstract)
    frame_encoder = None
    if config.encoder == "cached":
        stage1 = meta.get("stage1_encoder")
        if not stage1:
            raise UserError(
                f"{directory / str(step)}: policy trains on cached embeddings but names no stage-1 encoder"
            )
        from robopolicy.train.frame_encoder import FrameEncoder

        frame_encoder = FrameEncoder(stage1["checkpoint"], batch_size=max(config.obs_horizon, 1))
    return LoadedPolicy(config, params, stats, meta, directory, step, frame_encoder)


def past_token_steps(config: PolicyConfig) -> int:
    """How many past actions a policy was trained to predict (Past-Token Prediction, #5); 0 for none.

    A PTP policy says so in its config (`past_steps`, -1 for all To−1 past tokens); the plain flow
    policy's loss covers only tokens To−1 onwards, so its past tokens are untrained.
    """
    past = int(getattr(config, "past_steps", 0) or 0)
    available = config.obs_horizon - 1
    return available if past < 0 else min(past, available)


def check_execution(config: PolicyConfig, execution: ExecutionSettings, where: str) -> int:
    """Actions executed per plan under `execution`; a UserError naming `where` if the policy cannot run so."""
    if execution.self_verify_candidates > 1 and past_token_steps(config) == 0:
        raise UserError(
            f"{where}: self_verify_candidates={execution.self_verify_candidates} needs a policy trained "
            "with past-token prediction (#5); this one has no past-token heads"
        )
    if execution.mode != "chunk":
        return 1
    n = execution.n_action_steps or config.n_action_steps
    limit = config.action_horizon - config.obs_horizon + 1
    if n > limit:
        raise UserError(
            f"{where}: n_action_steps={n} exceeds the {limit} future actions in a chunk of this policy "
            f"(action_horizon {config.action_horizon}, obs_horizon {config.obs_horizon})"
        )
    return n


def select_by_past_actions(
    candidates: Float[np.ndarray, "n h a"], executed: Float[np.ndarray, "k a"], past_start: int
) -> int:
    """Index of the candidate whose predicted past actions best match the executed ones.

    candidates: N sampled chunks in normalized action space; executed: the last k executed actions,
    normalized, oldest first; they align with chunk indices past_start … past_start + k − 1. Score is
    the mean squared error (PTP self-verification).
    """
    k = executed.shape[0]
    predicted = candidates[:, past_start : past_start + k]
    scores = np.mean((predicted - executed[None]) ** 2, axis=(1, 2))
    return int(np.argmin(scores))


def ensemble_weights(num_predictions: int, decay: float) -> Float[np.ndarray, " n"]:
    """ACT's temporal-ensemble weights exp(−m·i), i = 0 for the oldest prediction, normalized to sum 1."""
    w = np.exp(-decay * np.arange(num_predictions, dtype=np.float64))
    return w / w.sum()


_SAMPLERS: dict[PolicyConfig, Callable[..., jax.Array]] = {}
_ROW_SAMPLERS: dict[PolicyConfig, Callable[..., jax.Array]] = {}


def _sample_fn(cfg: PolicyConfig) -> Callable[..., jax.Array]:
    """(params, batch, key, num) → [num, H, A] normalized: encode one window once, draw `num` chunks."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: Policy(cfg, rngs=nnx.Rngs(0))))

    def sample(params: nnx.State, batch: dict[str, Any], key: jax.Array, num: int) -> jax.Array:
        model = nnx.merge(graphdef, params)
        cond = model.encode(
            batch.get("images"),
            batch["state"],
            obs_valid=batch.get("obs_valid"),
            instruction=batch.get("instruction"),
            embeddings=batch.get("embeddings"),
        )
        return model.sample_candidates(cond, key, num)[0]

    return sample


def window_sampler(cfg: PolicyConfig) -> Callable[..., jax.Array]:
    """The jitted sampler of one window: (params, batch, key, num) → [num, H, A] chunks (normalized).

    One per policy shape, shared by runners, so checkpoints of a run compile once.
    """
    if cfg not in _SAMPLERS:
        _SAMPLERS[cfg] = jax.jit(_sample_fn(cfg), static_argnums=3)
    return _SAMPLERS[cfg]


def row_sampler(cfg: PolicyConfig) -> Callable[..., jax.Array]:
    """The sampler over rows of windows, each with its own key: (params, batch, keys, num) → [B, num, H, A].

    Every leaf of `batch` is one `window_batch` per row, stacked: [B, 1, ...]. Row b draws exactly what
    one unbatched call with keys[b] would, so an episode's actions do not depend on its batch-mates.
    """
    if cfg not in _ROW_SAMPLERS:
        sample = _sample_fn(cfg)

        @functools.partial(jax.jit, static_argnums=3)
        def sample_rows(params: nnx.State, batch: dict[str, Any], keys: jax.Array, num: int) -> jax.Array:
            return jax.vmap(lambda row, key: sample(params, row, key, num))(batch, keys)

        _ROW_SAMPLERS[cfg] = sample_rows
    return _ROW_SAMPLERS[cfg]


def window_batch(
    policy: LoadedPolicy,
    history: Sequence[dict[str, np.ndarray]],
    t: int,
    stride: int,
    instruction: np.ndarray | None,
) -> dict[str, Any]:
    """The model input for the window ending at step `t` of an episode (batch axis 1, numpy).

    `history` holds the last `history_length(To, stride)` observations (padded with the first one at
    the episode start); steps before the first observation are marked invalid, as in training.
    """
    cfg = policy.config
    frames = observed_frames(history, cfg.obs_horizon, stride)
    first_valid = (cfg.obs_horizon - 1) - t // stride
    images = {cam: np.stack([o[cam] for o in frames]) for cam in cfg.cameras}
    batch: dict[str, Any] = {
        "state": policy.stats.state.normalize(np.stack([o["state"] for o in frames]))[None].astype(
            np.float32
        ),
        "obs_valid": np.arange(cfg.obs_horizon)[None] >= first_valid,
    }
    if policy.frame_encoder is not None:  # stage 2: the frozen stage-1 encoder embeds the frames
        batch["embeddings"] = {k: np.asarray(v)[None] for k, v in policy.frame_encoder(images).items()}
    else:
        batch["images"] = {cam: v[None] for cam, v in images.items()}
    if instruction is not None:
        batch["instruction"] = instruction
    return batch


def executed_history_length(past: int, stride: int = 1) -> int:
    """Executed actions to keep for self-verification: the past tokens sit `stride` steps apart, the
    newest at t−stride, so the oldest is `past·stride` steps back (at least 1, for an empty deque)."""
    return max(past * stride, 1)


def choose_chunk(
    policy: LoadedPolicy,
    chunks: Float[np.ndarray, "n h a"],
    executed: Sequence[np.ndarray],
    past: int,
    stride: int = 1,
) -> Float[np.ndarray, "h a"]:
    """The candidate to execute, unnormalized: with several candidates and a full history of executed
    (normalized) actions, the one whose past tokens match it best (self-verification); else the first.

    `executed` holds the last `past·stride` executed actions, oldest first; with a frame stride the
    past tokens stand for every `stride`-th of them (steps t−past·stride, …, t−stride).
    """
    best = 0
    # Only with a full history of executed actions: before that the past tokens have nothing to match.
    if len(chunks) > 1 and past and len(executed) == past * stride:
        start = policy.config.obs_horizon - 1 - past
        best = select_by_past_actions(chunks, np.stack(list(executed)[::stride]), start)
    return policy.stats.action.unnormalize(chunks[best]).astype(np.float32)


def instruction_ids(policy: LoadedPolicy, instruction: str | None = None) -> np.ndarray | None:
    """int32 [1, L] word ids of `instruction` (default: the training task's) for a text-conditioned
    policy, encoded with the vocabulary stored in its checkpoint; None for a policy without text."""
    if policy.config.text == "none":
        return None
    where = str(policy.checkpoint_dir / str(policy.step))
    if "instruction_vocab" not in policy.meta:
        raise UserError(f"{where}: text-conditioned policy without an instruction vocabulary in its metadata")
    text = instruction if instruction is not None else str(policy.meta.get("instruction", ""))
    return InstructionVocab.from_dict(policy.meta["instruction_vocab"]).encode(text)[None]


class PolicyRunner:
    """Closed-loop action selection for one environment, under given execution settings."""

    def __init__(
        self,
        policy: LoadedPolicy,
        seed: int = 0,
        execution: ExecutionSettings | None = None,
        instruction: str | None = None,
    ) -> None:
        self.policy = policy
        cfg = policy.config
        self.execution = execution or ExecutionSettings()
        self._cameras = cfg.cameras
        self._n_execute = check_execution(cfg, self.execution, str(policy.checkpoint_dir / str(policy.step)))
        self._candidates = self.execution.self_verify_candidates
        self._past = past_token_steps(cfg)
        self._sample = window_sampler(cfg)
        self._instruction = instruction_ids(policy, instruction)
        self._key = jax.random.key(seed)
        # Policies trained on subsampled history (frame_stride > 1) keep enough steps to subsample alike.
        data_cfg = policy.meta.get("train_config", {}).get("data", {})
        self._stride = int(data_cfg.get("frame_stride", 1))
        self._history: deque[dict[str, np.ndarray]] = deque(
            maxlen=history_length(cfg.obs_horizon, self._stride)
        )
        self._queue: deque[np.ndarray] = deque()
        self._executed: deque[np.ndarray] = deque(maxlen=executed_history_length(self._past, self._stride))
        self._predictions: dict[int, list[np.ndarray]] = {}
        self._t = 0
        self.inference_seconds = 0.0
        self.num_inferences = 0

    def reset(self, seed: int | None = None, instruction: str | None = None) -> None:
        """Start an episode; a seed makes its sampling noise independent of earlier episodes, and an
        instruction (the episode's task) conditions a text-conditioned policy."""
        if instruction is not None:
            self._instruction = instruction_ids(self.policy, instruction)
        self._history.clear()
        self._queue.clear()
        self._executed.clear()
        self._predictions.clear()
        self._t = 0
        if seed is not None:
            self._key = jax.random.key(seed)

    def act(self, obs: dict[str, np.ndarray]) -> Float[np.ndarray, " a"]:
        """The action for the current step, given the newest observation."""
        cfg = self.policy.config
        if not self._history:
            self._history.extend([obs] * self._history.maxlen)
        else:
            self._history.append(obs)
        start = cfg.obs_horizon - 1
        if self.execution.mode == "temporal_ensemble":
            chunk = self._timed_plan()
            for i, a in enumerate(chunk[start:]):
                self._predictions.setdefault(self._t + i, []).append(a)
            preds = self._predictions.pop(self._t)
            action = np.tensordot(
                ensemble_weights(len(preds), self.execution.ensemble_decay), np.stack(preds), 1
            )
            action = action.astype(np.float32)
        else:
            if not self._queue:
                chunk = self._timed_plan()
                self._queue.extend(chunk[start : start + self._n_execute])
            action = self._queue.popleft()
        self._t += 1
        if self._past:
            self._executed.append(self.policy.stats.action.normalize(action))
        return action

    def _timed_plan(self) -> Float[np.ndarray, "h a"]:
        t0 = time.perf_counter()
        chunk = self._plan()
        self.inference_seconds += time.perf_counter() - t0
        self.num_inferences += 1
        return chunk

    def _plan(self) -> Float[np.ndarray, "h a"]:
        batch = window_batch(self.policy, self._history, self._t, self._stride, self._instruction)
        self._key, key = jax.random.split(self._key)
        chunks = np.asarray(self._sample(self.policy.params, batch, key, self._candidates))
        return choose_chunk(self.policy, chunks, self._executed, self._past, self._stride)
