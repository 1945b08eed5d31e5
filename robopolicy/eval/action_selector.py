"""Closed-loop action selection for N slots (envs) at once: newest observations in, one action per slot.

Each slot keeps what its episode needs: the observation history (the last (To−1)·stride + 1 steps,
padded with the first observation at the episode start, as training windows are), a queue of
planned actions, the predictions of the temporal ensemble and, for self-verification, the last
(To−1)·stride executed actions. When a slot's queue is empty (every step in the replanning modes) it
plans: it samples a chunk and enqueues its actions To−1 … To−1+n_action_steps−1, i.e. from the
current step on.

All slots that plan in the same step are sampled in one jitted call whose batch is always the number
of slots (rows of slots that do not plan are padding), so it compiles once; or, with
rows="powers_of_two", the number of planning slots rounded up to a power of two, which compiles once
per such size but computes no more padding than that: cheaper where few slots plan at a time and
compute grows with rows (a CPU), as on a policy server whose clients come and go. Self-verification is the
model's own (`Policy.sample_verified`), inside that call; it is told how many actions each slot has
executed, and each plan's choice (candidate, all scores) is kept for the episode's record
(`selection_log`). Each row draws its noise from its slot's
key, which starts from the episode's seed and is split once per plan: an episode's actions depend on
its seed only, not on which slot ran it or on what the other slots were doing.

A slot can also be told what its env executed when that differs from what `act` returned, or when
the env ran further actions without asking (`record_executed`): a policy server's clients do both
(robopolicy.serve). `ahead` lists the actions a slot would execute next without a new plan.

`PolicyRunner` (robopolicy.eval.policy_runner) is the one-slot view of this class.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Bool, Float, Int

from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.instruction_vocab import InstructionVocab
from robopolicy.data.windows import history_length, observed_frames
from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.self_verification import Selection, Verification
from robopolicy.train.loaded_policy import LoadedPolicy


def past_token_steps(config: PolicyConfig) -> int:
    """How many past actions a policy was trained to predict (Past-Token Prediction, #5); 0 for none.

    A PTP policy says so in its config (`past_steps`, -1 for all To−1 past tokens); the plain flow
    policy's loss covers only tokens To−1 onwards, so its past tokens are untrained.
    """
    available = config.obs_horizon - 1
    return available if config.past_steps < 0 else min(config.past_steps, available)


def check_execution(config: PolicyConfig, execution: ExecutionSettings, where: str) -> int:
    """Actions executed per plan under `execution`; a UserError naming `where` if the policy cannot run so."""
    if config.frame_stride < 1:
        raise UserError(
            f"{where}: policy config has frame_stride {config.frame_stride}; it needs the trained one"
        )
    if execution.self_verify_candidates > 1 and past_token_steps(config) == 0:
        raise UserError(
            f"{where}: self_verify_candidates={execution.self_verify_candidates} needs a policy trained "
            "with past-token prediction (#5); this one has no past-token heads"
        )
    if execution.self_verify_candidates > 1:
        try:
            execution.verification.check_action_dim(config.action_dim)
        except ValueError as e:
            raise UserError(f"{where}: execution.{e}") from None
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


def ensemble_weights(num_predictions: int, decay: float) -> Float[np.ndarray, " n"]:
    """ACT's temporal-ensemble weights exp(−m·i), i = 0 for the oldest prediction, normalized to sum 1."""
    w = np.exp(-decay * np.arange(num_predictions, dtype=np.float64))
    return w / w.sum()


def instruction_ids(policy: LoadedPolicy, instruction: str | None = None) -> np.ndarray | None:
    """int32 [1, L] word ids of `instruction` (default: the training task's) for a text-conditioned
    policy, encoded with the vocabulary stored in its checkpoint; None for a policy without text."""
    if policy.config.text == "none":
        return None
    if "instruction_vocab" not in policy.meta:
        raise UserError(
            f"{policy.where}: text-conditioned policy without an instruction vocabulary in its metadata"
        )
    text = instruction if instruction is not None else str(policy.meta.get("instruction", ""))
    return InstructionVocab.from_dict(policy.meta["instruction_vocab"]).encode(text)[None]


def window_batch(
    policy: LoadedPolicy, history: Sequence[dict[str, np.ndarray]], t: int, instruction: np.ndarray | None
) -> dict[str, Any]:
    """The model input for the window ending at step `t` of an episode (batch axis 1, numpy).

    `history` holds the last `history_length(To, frame_stride)` observations (padded with the first
    one at the episode start); steps before the first observation are marked invalid, as in training.
    """
    cfg = policy.config
    frames = observed_frames(history, cfg.obs_horizon, cfg.frame_stride)
    first_valid = (cfg.obs_horizon - 1) - t // cfg.frame_stride
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
        # Frames of another size (a render or camera that differs from the training data) get the
        # training pipeline's resize; frames at the policy's size pass through untouched.
        size = cfg.image_size
        batch["images"] = {cam: resize_with_pad(v, size, size)[None] for cam, v in images.items()}
    if instruction is not None:
        batch["instruction"] = instruction
    return batch


def _inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """A window batch as the keyword arguments of `Policy.encode` / `Policy.sample_verified`."""
    return {
        "obs_valid": batch.get("obs_valid"),
        "instruction": batch.get("instruction"),
        "embeddings": batch.get("embeddings"),
    }


@functools.cache
def _graphdef(cfg: PolicyConfig) -> nnx.GraphDef:
    return nnx.graphdef(nnx.eval_shape(lambda: Policy(cfg, rngs=nnx.Rngs(0))))


@functools.cache
def window_sampler(cfg: PolicyConfig) -> Callable[..., jax.Array]:
    """The jitted sampler of one window: (params, batch, key, num) → [num, H, A] chunks (normalized),
    the window encoded once. One per policy shape, so checkpoints of a run compile once."""

    @functools.partial(jax.jit, static_argnums=3)
    def sample(params: nnx.State, batch: dict[str, Any], key: jax.Array, num: int) -> jax.Array:
        model = nnx.merge(_graphdef(cfg), params)
        cond = model.encode(batch.get("images"), batch["state"], **_inputs(batch))
        return model.sample_candidates(cond, key, num)[0]

    return sample


@functools.cache
def _row_sampler(cfg: PolicyConfig) -> Callable[..., Selection]:
    """(params, batch, keys, history, executed, num, verification) → the `Selection` of each row:
    the chunk it executes [B, H, A] (normalized), its candidate index, the candidates' scores and
    the number of compared past tokens.

    Every leaf of `batch` is one `window_batch` per row, stacked: [B, 1, ...]; `history` [B, K, A] and
    `executed` [B] are each row's executed actions and their count, for self-verification. Row b draws
    exactly what one unbatched call with keys[b] would, so an episode's actions do not depend on its
    batch-mates.
    """

    def sample_row(
        params: nnx.State,
        row: dict[str, Any],
        key: jax.Array,
        history: Float[jax.Array, "k a"],
        executed: Int[jax.Array, ""],
        num: int,
        verification: Verification,
    ) -> Selection:
        model = nnx.merge(_graphdef(cfg), params)
        chosen = model.sample_verified(
            row.get("images"),
            row["state"],
            key,
            history[None],
            executed[None],
            num_candidates=num,
            verification=verification,
            **_inputs(row),
        )
        return jax.tree.map(lambda x: x[0], chosen)

    @functools.partial(jax.jit, static_argnums=(5, 6))
    def sample_rows(
        params: nnx.State,
        batch: dict[str, Any],
        keys: jax.Array,
        history: jax.Array,
        executed: jax.Array,
        num: int,
        verification: Verification,
    ) -> Selection:
        return jax.vmap(lambda row, key, h, e: sample_row(params, row, key, h, e, num, verification))(
            batch, keys, history, executed
        )

    return sample_rows


@dataclass
class _Slot:
    """One episode's state: observation history, queued actions, executed actions, predictions."""

    key: jax.Array
    history: deque[dict[str, np.ndarray]]
    instruction: np.ndarray | None
    executed: deque[np.ndarray]
    queue: deque[np.ndarray] = field(default_factory=deque)
    predictions: dict[int, list[np.ndarray]] = field(default_factory=dict)
    t: int = 0
    chunk: np.ndarray | None = None  # the newest plan's actions from its step on
    selections: list[dict[str, Any]] = field(default_factory=list)  # self-verification, per plan


class ActionSelector:
    """Action selection for `num_slots` episodes; `act` plans, in one call, every slot that needs it.

    Args:
        policy: the trained policy.
        num_slots: episodes run at once (envs of a vector env).
        execution: how chunks become actions (chunking, replanning, ensembling, self-verification).
        seed: the sampling seed of a slot reset without one.
        rows: the batch of each policy call: "slots" (always num_slots) or "powers_of_two" (the
            planning slots rounded up to a power of two, at most num_slots); see the module docstring.
    """

    def __init__(
        self,
        policy: LoadedPolicy,
        num_slots: int = 1,
        execution: ExecutionSettings | None = None,
        seed: int = 0,
        rows: Literal["slots", "powers_of_two"] = "slots",
    ) -> None:
        if num_slots < 1:
            raise ValueError(f"ActionSelector needs num_slots >= 1, got {num_slots}")
        self.policy = policy
        self.execution = execution or ExecutionSettings()
        self.num_slots = num_slots
        cfg = policy.config
        self._n_execute = check_execution(cfg, self.execution, policy.where)
        self._candidates = self.execution.self_verify_candidates
        # Executed actions are kept only when self-verification reads them.
        self._verify = self._candidates > 1
        self._sample = _row_sampler(cfg)
        self._history_length = history_length(cfg.obs_horizon, cfg.frame_stride)
        self._seed = seed
        self._powers_of_two = rows == "powers_of_two"
        self._slots: list[_Slot | None] = [None] * num_slots
        self.inference_seconds = 0.0
        self.num_calls = 0

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.policy.config.cameras

    def batch_rows(self, planning: int) -> int:
        """The rows of the policy call that plans for `planning` slots (1 <= planning <= num_slots)."""
        if not self._powers_of_two:
            return self.num_slots
        return min(self.num_slots, 1 << (planning - 1).bit_length())

    @property
    def image_size(self) -> int:
        return self.policy.config.image_size

    def reset(self, slot: int, seed: int | None = None, instruction: str | None = None) -> None:
        """Start an episode in `slot`. With a seed its sampling noise is a function of the seed alone;
        without one the slot's key sequence goes on (a new slot starts from the selector's seed).
        `instruction` (the episode's task) conditions a text-conditioned policy; None keeps the slot's
        (a new slot's: the training task's)."""
        old = self._slots[slot]
        if seed is not None:
            key = jax.random.key(seed)
        else:
            key = old.key if old is not None else jax.random.key(self._seed)
        if instruction is not None or old is None:
            ids = instruction_ids(self.policy, instruction)
        else:
            ids = old.instruction
        self._slots[slot] = _Slot(
            key=key,
            history=deque(maxlen=self._history_length),
            instruction=ids,
            executed=deque(maxlen=max(self.policy.config.verification_history_length, 1)),
        )

    def release(self, slot: int) -> None:
        """`slot` has no episode any more; it is not planned for."""
        self._slots[slot] = None

    def selection_log(self, slot: int) -> list[dict[str, Any]] | None:
        """With self-verification, one entry per plan of `slot`'s episode so far: "t" (the step it
        was planned at), "chosen" (the candidate executed), "scores" (every candidate's score; 0s
        where "compared" is 0) and "compared" (past tokens compared; 0: candidate 0 taken, or with
        selection="random", a random one); None without self-verification."""
        s = self._slots[slot]
        return list(s.selections) if self._verify and s is not None else None

    def act(
        self, obs: dict[str, np.ndarray], active: Bool[np.ndarray, " n"]
    ) -> tuple[Float[np.ndarray, "n a"], Float[np.ndarray, " n"]]:
        """Actions for the active slots (rows of inactive ones are zero) and each slot's share of this
        step's inference time in seconds, both for the first len(active) <= num_slots slots. `obs` is a
        vector env's batched observation, one row per entry of `active`.
        """
        cfg = self.policy.config
        start = cfg.obs_horizon - 1
        ensemble = self.execution.mode == "temporal_ensemble"
        planners: list[int] = []
        for i in map(int, np.flatnonzero(active)):
            slot = self._slot(i)
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
            slot = self._slot(i)
            if i in chunks:
                slot.chunk = chunks[i][start:]
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
            if self._verify:
                slot.executed.append(self.policy.stats.action.normalize(action).astype(np.float32))
            actions[i] = action
        return actions, seconds

    def record_executed(self, slot: int, actions: Float[np.ndarray, "k a"]) -> None:
        """What `slot`'s env executed since its last `act`, when that was not exactly the one action `act`
        returned: actions[0] ran at that step (self-verification compares past tokens with it instead)
        and actions[1:] at the k−1 steps after it, which the selector did not see: each moves the queue
        and the step on and drops its ensemble predictions, and its observation is taken to be the
        last one seen."""
        s = self._slot(slot)
        normalized = self.policy.stats.action.normalize(np.asarray(actions)).astype(np.float32)
        if self._verify and s.executed:
            s.executed[-1] = normalized[0]
        for action in normalized[1:]:
            s.history.append(s.history[-1])
            if s.queue:
                s.queue.popleft()
            s.predictions.pop(s.t, None)
            s.t += 1
            if self._verify:
                s.executed.append(action)

    def ahead(self, slot: int) -> Float[np.ndarray, "m a"]:
        """The actions `slot` would execute at its next steps without a new observation: its queue in
        "chunk" mode, else the rest of the newest plan (unnormalized, possibly none)."""
        s = self._slot(slot)
        if self.execution.mode == "chunk":
            rows = list(s.queue)
        else:
            rows = list(s.chunk[1:]) if s.chunk is not None else []
        return np.asarray(rows, np.float32).reshape(len(rows), self.policy.config.action_dim)

    def _slot(self, i: int) -> _Slot:
        slot = self._slots[i]
        if slot is None:
            raise RuntimeError(f"slot {i} is active but has no episode; call reset first")
        return slot

    def _plan(self, rows: list[int]) -> dict[int, np.ndarray]:
        """Unnormalized chunks [H, A] for the slots in `rows`, from one sampler call of `batch_rows` rows."""
        cfg = self.policy.config
        windows: list[dict[str, Any]] = []
        keys, histories, executed = [], [], []
        for i in rows:
            slot = self._slot(i)
            windows.append(window_batch(self.policy, slot.history, slot.t, slot.instruction))
            slot.key, key = jax.random.split(slot.key)
            keys.append(key)
            history = np.zeros((cfg.verification_history_length, cfg.action_dim), np.float32)
            if self._verify and slot.executed:
                history[-len(slot.executed) :] = np.stack(slot.executed)
            histories.append(history)
            executed.append(len(slot.executed) if self._verify else 0)
        # Padding rows repeat the first row, so that the call has its fixed number of rows.
        pad = self.batch_rows(len(rows)) - len(rows)
        batch = jax.tree.map(lambda *rows_: np.stack(rows_ + rows_[:1] * pad), *windows)
        chosen = self._sample(
            self.policy.params,
            batch,
            jnp.stack(keys + keys[:1] * pad),
            np.stack(histories + histories[:1] * pad),
            np.asarray(executed + executed[:1] * pad, np.int32),
            self._candidates,
            self.execution.verification,
        )
        out = self.policy.stats.action.unnormalize(np.asarray(chosen.chunk)).astype(np.float32)
        if self._verify:
            index, scores, compared = (np.asarray(x) for x in chosen[1:])
            for row, i in enumerate(rows):
                slot = self._slot(i)
                slot.selections.append(
                    {
                        "t": slot.t,
                        "chosen": int(index[row]),
                        "scores": [float(f"{s:.6g}") for s in scores[row]],
                        "compared": int(compared[row]),
                    }
                )
        return {i: out[row] for row, i in enumerate(rows)}
