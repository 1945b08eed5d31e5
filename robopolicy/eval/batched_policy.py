"""Closed-loop action selection for N envs at once, with one batched policy call per env step.

The per-env logic is `PolicyRunner`'s (observation history padded with the first observation,
action queue, temporal ensembling, PTP self-verification), kept per slot. Envs that need a new chunk
in the same step are sampled together in one jitted call whose batch is always N (rows of envs that
do not plan are padding), so the sampler compiles once. Each row draws its noise from its own key,
and each slot's key sequence starts from the episode's seed and is split once per plan exactly as
`PolicyRunner` does: an episode's actions depend on its seed only, not on which env ran it or on
what the other envs were doing.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float

from robopolicy.data.windows import history_length
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.policy_runner import (
    LoadedPolicy,
    check_execution,
    choose_chunk,
    ensemble_weights,
    executed_history_length,
    instruction_ids,
    past_token_steps,
    row_sampler,
    window_batch,
)


@dataclass
class _Slot:
    """One env's episode state: observation history, queued actions, executed actions, predictions."""

    key: jax.Array
    history: deque[dict[str, np.ndarray]]
    instruction: np.ndarray | None = None
    queue: deque[np.ndarray] = field(default_factory=deque)
    executed: deque[np.ndarray] = field(default_factory=deque)
    predictions: dict[int, list[np.ndarray]] = field(default_factory=dict)
    t: int = 0


class BatchedPolicy:
    """Action selection for `num_envs` slots; `act` plans, in one call, every slot that needs it."""

    def __init__(self, policy: LoadedPolicy, num_envs: int, execution: ExecutionSettings) -> None:
        if num_envs < 1:
            raise ValueError(f"BatchedPolicy needs num_envs >= 1, got {num_envs}")
        self.policy = policy
        self.execution = execution
        self.num_envs = num_envs
        cfg = policy.config
        self._n_execute = check_execution(cfg, execution, str(policy.checkpoint_dir / str(policy.step)))
        self._candidates = execution.self_verify_candidates
        self._past = past_token_steps(cfg)
        self._sample = row_sampler(cfg)
        self._slots: list[_Slot | None] = [None] * num_envs
        self._stride = cfg.frame_stride
        self._history_length = history_length(cfg.obs_horizon, self._stride)
        self.inference_seconds = 0.0
        self.num_calls = 0

    def reset_slot(self, i: int, seed: int, instruction: str | None = None) -> None:
        """Start an episode in slot i; its sampling noise is a function of `seed` alone, and
        `instruction` (the episode's task) conditions a text-conditioned policy."""
        self._slots[i] = _Slot(
            key=jax.random.key(seed),
            history=deque(maxlen=self._history_length),
            instruction=instruction_ids(self.policy, instruction),
            executed=deque(maxlen=executed_history_length(self._past, self._stride)),
        )

    def release_slot(self, i: int) -> None:
        """Slot i has no episode any more; it is not planned for."""
        self._slots[i] = None

    def act(
        self, obs: dict[str, np.ndarray], active: Bool[np.ndarray, " n"]
    ) -> tuple[Float[np.ndarray, "n a"], Float[np.ndarray, " n"]]:
        """Actions for the active slots (rows of inactive ones are zero) and each slot's share of
        this step's inference time in seconds, both for the first len(active) <= num_envs slots.
        `obs` is the vector env's batched observation, one row per entry of `active`.
        """
        cfg = self.policy.config
        start = cfg.obs_horizon - 1
        ensemble = self.execution.mode == "temporal_ensemble"
        planners: list[int] = []
        for i in map(int, np.flatnonzero(active)):
            slot = self._slots[i]
            if slot is None:
                raise RuntimeError(f"slot {i} is active but has no episode; call reset_slot first")
            o = {k: v[i] for k, v in obs.items()}
            if not slot.history:
                slot.history.extend([o] * self._history_length)
            else:
                slot.history.append(o)
            if ensemble or not slot.queue:
                planners.append(i)
        seconds = np.zeros(len(active))
        chunks: dict[int, np.ndarray] = {}
        if planners:
            t0 = time.perf_counter()
            chunks = self._plan(planners)
            elapsed = time.perf_counter() - t0
            self.inference_seconds += elapsed
            self.num_calls += 1
            seconds[planners] = elapsed / len(planners)
        actions = np.zeros((len(active), cfg.action_dim), np.float32)
        for i in map(int, np.flatnonzero(active)):
            slot = self._slots[i]
            assert slot is not None
            if ensemble:
                for k, a in enumerate(chunks[i][start:]):
                    slot.predictions.setdefault(slot.t + k, []).append(a)
                preds = slot.predictions.pop(slot.t)
                weights = ensemble_weights(len(preds), self.execution.ensemble_decay)
                action = np.tensordot(weights, np.stack(preds), 1).astype(np.float32)
            else:
                if i in chunks:
                    slot.queue.extend(chunks[i][start : start + self._n_execute])
                action = slot.queue.popleft()
            slot.t += 1
            if self._past:
                slot.executed.append(self.policy.stats.action.normalize(action))
            actions[i] = action
        return actions, seconds

    def _plan(self, rows: list[int]) -> dict[int, np.ndarray]:
        """Unnormalized chunks [H, A] for the slots in `rows`, from one sampler call of batch N."""
        windows: list[dict[str, Any]] = []
        keys = []
        for i in rows:
            slot = self._slots[i]
            assert slot is not None
            windows.append(window_batch(self.policy, slot.history, slot.t, self._stride, slot.instruction))
            slot.key, key = jax.random.split(slot.key)
            keys.append(key)
        # Rows of envs that do not plan repeat the first window, so the call always has N rows.
        pad = self.num_envs - len(rows)
        batch = jax.tree.map(lambda *rows_: np.stack(rows_ + rows_[:1] * pad), *windows)
        out = np.asarray(
            self._sample(self.policy.params, batch, jnp.stack(keys + keys[:1] * pad), self._candidates)
        )
        chunks: dict[int, np.ndarray] = {}
        for row, i in enumerate(rows):
            slot = self._slots[i]
            assert slot is not None
            chunks[i] = choose_chunk(self.policy, out[row], slot.executed, self._past, self._stride)
        return chunks
