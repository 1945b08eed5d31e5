"""Running a trained policy in closed loop: observation history in, one action per env step out.

It keeps the last To observations (padding with the first one at episode start, as training
windows do) and a queue of actions: when the queue is empty it samples a chunk and enqueues its
actions To−1 … To−1+n_action_steps−1, i.e. from the current step on.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float

from robopolicy.data.normalization import NormalizationStats
from robopolicy.data.windows import history_length, observed_frames
from robopolicy.errors import UserError
from robopolicy.models.flow_policy import FlowPolicy
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


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load the EMA weights and metadata of the latest checkpoint at `path` (run or checkpoint folder)."""
    directory, step, meta = checkpoint.load_meta(path)
    try:
        config = PolicyConfig.from_dict(meta["policy_config"])
        stats = NormalizationStats.from_dict(meta["stats"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{directory / str(step)}: checkpoint metadata is missing or invalid ({e})") from e
    abstract = nnx.eval_shape(lambda: FlowPolicy(config, rngs=nnx.Rngs(0)))
    params = checkpoint.restore_policy_params(directory, step, nnx.state(abstract, nnx.Param))
    return LoadedPolicy(config, params, stats, meta, directory, step)


class PolicyRunner:
    """Closed-loop action selection for one environment."""

    def __init__(self, policy: LoadedPolicy, seed: int = 0) -> None:
        self.policy = policy
        cfg = policy.config
        self._cameras = cfg.cameras
        graphdef = nnx.graphdef(nnx.eval_shape(lambda: FlowPolicy(cfg, rngs=nnx.Rngs(0))))

        @jax.jit
        def sample(
            params: nnx.State, images: dict[str, jax.Array], state: jax.Array, key: jax.Array
        ) -> jax.Array:
            return nnx.merge(graphdef, params).sample(images, state, key)

        self._sample = sample
        self._key = jax.random.key(seed)
        # Policies trained on subsampled history (frame_stride > 1) keep enough steps to subsample alike.
        data_cfg = policy.meta.get("train_config", {}).get("data", {})
        self._stride = int(data_cfg.get("frame_stride", 1))
        self._history: deque[dict[str, np.ndarray]] = deque(
            maxlen=history_length(cfg.obs_horizon, self._stride)
        )
        self._queue: deque[np.ndarray] = deque()
        self.inference_seconds = 0.0
        self.num_inferences = 0

    def reset(self) -> None:
        self._history.clear()
        self._queue.clear()

    def act(self, obs: dict[str, np.ndarray]) -> Float[np.ndarray, " a"]:
        """The action for the current step, given the newest observation."""
        cfg = self.policy.config
        if not self._history:
            self._history.extend([obs] * self._history.maxlen)
        else:
            self._history.append(obs)
        if not self._queue:
            t0 = time.perf_counter()
            chunk = self._plan()
            self.inference_seconds += time.perf_counter() - t0
            self.num_inferences += 1
            start = cfg.obs_horizon - 1
            self._queue.extend(chunk[start : start + cfg.n_action_steps])
        return self._queue.popleft()

    def _plan(self) -> Float[np.ndarray, "h a"]:
        frames = observed_frames(self._history, self.policy.config.obs_horizon, self._stride)
        images = {cam: jnp.asarray(np.stack([o[cam] for o in frames])[None]) for cam in self._cameras}
        state = self.policy.stats.state.normalize(np.stack([o["state"] for o in frames]))[None]
        self._key, key = jax.random.split(self._key)
        chunk = np.asarray(self._sample(self.policy.params, images, jnp.asarray(state, jnp.float32), key))[0]
        return self.policy.stats.action.unnormalize(chunk).astype(np.float32)
