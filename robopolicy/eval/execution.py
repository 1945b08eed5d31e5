"""Execution settings: how a policy's action chunks become env actions during evaluation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from robopolicy.models.self_verification import Verification
from robopolicy.typed_config import from_table

ExecutionMode = Literal["chunk", "every_step", "temporal_ensemble"]

# LIBERO's de-facto caps per suite (220/280/300/520 steps), applied to our LIBERO-style suites.
LIBERO_STEP_CAPS: tuple[tuple[str, int], ...] = (
    ("libero_style_spatial", 220),
    ("libero_style_object", 280),
    ("libero_style_goal", 300),
    ("libero_style_long", 520),
)

# LIBERO's settle action: no end-effector motion, gripper open (−1).
NOOP_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)


@dataclass(frozen=True)
class ExecutionSettings:
    """How actions are executed.

    Attributes:
        name: a label for tables and plots; not part of the settings' identity (hash).
        mode: "chunk" executes `n_action_steps` actions of each sampled chunk, then replans;
            "every_step" replans at every step and executes only the current action;
            "temporal_ensemble" replans at every step and executes a weighted average of all
            predictions made so far for the current step, with weight exp(−m·i) for the i-th oldest
            prediction (i = 0 the oldest), as in ACT (Zhao et al. 2023, "Learning Fine-Grained
            Bimanual Manipulation with Low-Cost Hardware", m = 0.01): older predictions weigh more,
            which smooths the executed trajectory.
        n_action_steps: actions executed per chunk in "chunk" mode; 0 means the policy's own.
        ensemble_decay: m of the temporal ensemble (1/step), >= 0.
        settle_steps: no-op steps (no motion, gripper open) after reset, before the policy acts; they
            do not count towards the step cap, as in LIBERO's 10-step settle.
        max_steps: step cap per episode; 0 means the suite's cap from `suite_step_caps`, else the task's.
            Never above the task's own cap, at which its env ends the episode.
        suite_step_caps: (suite, cap) pairs.
        self_verify_candidates: PTP self-verification: sample this many chunks in one batched pass and
            execute the one whose predicted past actions best match the executed ones (1 = off). Needs
            a policy trained with past-token prediction.
        verification: how self-verification scores and chooses candidates: per-dimension weights
            ("equal", "translation", "custom", "inverse_variance"), partial or full history, and
            selection by score or at random (a control); see `robopolicy.models.self_verification`.
            Only read with self_verify_candidates > 1.
    """

    name: str = ""
    mode: ExecutionMode = "chunk"
    n_action_steps: int = 0
    ensemble_decay: float = 0.01
    settle_steps: int = 0
    max_steps: int = 0
    suite_step_caps: tuple[tuple[str, int], ...] = ()
    self_verify_candidates: int = 1
    verification: Verification = field(default_factory=Verification)

    def __post_init__(self) -> None:
        if self.mode not in ("chunk", "every_step", "temporal_ensemble"):
            raise ValueError(
                f"ExecutionSettings.mode: unknown mode {self.mode!r}; choose chunk, every_step or temporal_ensemble"
            )
        if self.n_action_steps < 0 or self.settle_steps < 0 or self.max_steps < 0:
            raise ValueError("ExecutionSettings: n_action_steps, settle_steps and max_steps must be >= 0")
        if self.ensemble_decay < 0:
            raise ValueError(f"ExecutionSettings.ensemble_decay must be >= 0, got {self.ensemble_decay}")
        if self.self_verify_candidates < 1:
            raise ValueError(
                f"ExecutionSettings.self_verify_candidates must be >= 1, got {self.self_verify_candidates}"
            )
        for suite, cap in self.suite_step_caps:
            if cap < 1:
                raise ValueError(
                    f"ExecutionSettings.suite_step_caps: cap of {suite!r} must be >= 1, got {cap}"
                )

    def step_cap(self, suite: str, task_cap: int) -> int:
        """The step cap of an episode of a task (whose own cap is `task_cap`) run under `suite`."""
        if self.max_steps:
            return self.max_steps
        return dict(self.suite_step_caps).get(suite, task_cap)

    def identity(self) -> dict[str, Any]:
        """Everything that changes what is executed (the name does not, nor do the verification
        options without self-verification: such settings keep the hash they had before the options
        existed)."""
        d = asdict(self)
        d.pop("name")
        if self.self_verify_candidates == 1:
            d.pop("verification")
        d["suite_step_caps"] = sorted([list(p) for p in self.suite_step_caps])
        return d

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def label(self) -> str:
        return self.name or self.mode

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "execution settings") -> ExecutionSettings:
        """From a TOML/JSON table, every value type-checked; a bad key or value is a one-line
        `UserError` naming `where` (a file) and the field. `suite_step_caps` may be a table."""
        return from_table(cls, d, where)
