"""Running a trained policy in closed loop on one env: the newest observation in, one action out.

`PolicyRunner` is the one-slot view of `ActionSelector` (robopolicy.eval.action_selector), which
holds the logic: observation history, action queue, temporal ensembling, self-verification.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.train.loaded_policy import LoadedPolicy


class PolicyRunner:
    """Closed-loop action selection for one environment, under given execution settings.

    `seed` seeds the sampling noise; `instruction` (default: the training task's) conditions a
    text-conditioned policy.
    """

    def __init__(
        self,
        policy: LoadedPolicy,
        seed: int = 0,
        execution: ExecutionSettings | None = None,
        instruction: str | None = None,
    ) -> None:
        self.policy = policy
        self.selector = ActionSelector(policy, 1, execution, seed=seed)
        self.selector.reset(0, seed, instruction)
        self._active = np.ones(1, bool)

    @property
    def execution(self) -> ExecutionSettings:
        return self.selector.execution

    @property
    def inference_seconds(self) -> float:
        """Seconds spent sampling chunks since the runner was made."""
        return self.selector.inference_seconds

    @property
    def num_inferences(self) -> int:
        """Chunks sampled since the runner was made (one policy call each)."""
        return self.selector.num_calls

    def reset(self, seed: int | None = None, instruction: str | None = None) -> None:
        """Start an episode; a seed makes its sampling noise independent of earlier episodes, and an
        instruction (the episode's task) conditions a text-conditioned policy."""
        self.selector.reset(0, seed, instruction)

    def act(self, obs: dict[str, np.ndarray]) -> Float[np.ndarray, " a"]:
        """The action for the current step, given the newest observation."""
        actions, _ = self.selector.act({k: np.asarray(v)[None] for k, v in obs.items()}, self._active)
        return actions[0]
