"""Scripted experts: what rollouts need from one, the task's expert, and one expert episode.

Experts read privileged simulator state and output the same normalised 7-d actions a policy outputs.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from robopolicy.sim.env import TabletopEnv
from robopolicy.sim.spec_expert import SpecExpert


class Expert(Protocol):
    """What rollouts need from a scripted expert."""

    @property
    def phase(self) -> int: ...

    def reset(self) -> None: ...

    def act(self) -> np.ndarray: ...


def make_expert(env: TabletopEnv) -> Expert:
    """The scripted expert of the env's task: its goal terms, in order, as motion primitives."""
    return SpecExpert(env)


def run_expert_episode(
    env: TabletopEnv,
    init_state: np.ndarray | None = None,
    seed: int | None = None,
    *,
    expert: Expert | None = None,
    noise_std: float = 0.0,
    noise_seed: int | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Roll out the expert for one episode, stopping at success, truncation or a sim error.

    With `noise_std > 0`, Gaussian noise (std in normalised action units, on the 3 translation dims) is added
    to the *executed* action, while `actions` records the clean expert action: the demonstrations then
    show how to recover from small perturbations.

    Returns a dict with
      observations: list of T+1 obs dicts (the last one follows the last action),
      object_states: float32 (T+1, O) the objects' poses at each observation (`env.object_state`),
      actions: float32 (T, 7) clean expert actions,
      executed_actions: float32 (T, 7) actions sent to the env,
      rewards: float32 (T,), success: bool, num_steps: int (T), init_state: float64 (D,),
      sim_error: str | None, failure_reason: str | None, phases: int8 (T,) expert phase per step.
    """
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if init_state is None:
        init_state = env.sample_init_state(0 if seed is None else seed)
    obs, info = env.reset(init_state=init_state)
    expert = expert or make_expert(env)
    expert.reset()
    rng = np.random.default_rng(noise_seed)
    limit = env.max_steps if max_steps is None else max_steps
    observations, actions, executed, rewards, phases = [obs], [], [], [], []
    object_states = [env.object_state()]
    success = False
    for _ in range(limit):
        phases.append(int(expert.phase))
        action = expert.act()
        todo = action.copy()
        if noise_std > 0:
            todo[:3] = np.clip(todo[:3] + rng.normal(0.0, noise_std, size=3), -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(todo)
        observations.append(obs)
        object_states.append(env.object_state())
        actions.append(action)
        executed.append(todo)
        rewards.append(reward)
        success = bool(info["success"])
        if terminated or truncated:
            break
    return {
        "observations": observations,
        "object_states": np.stack(object_states),
        "actions": np.asarray(actions, dtype=np.float32).reshape(-1, 7),
        "executed_actions": np.asarray(executed, dtype=np.float32).reshape(-1, 7),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "success": success,
        "num_steps": len(actions),
        "init_state": np.asarray(init_state, dtype=np.float64),
        "sim_error": info["sim_error"],
        "failure_reason": info.get("failure_reason"),
        "phases": np.asarray(phases, dtype=np.int8),
    }
