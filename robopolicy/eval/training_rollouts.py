"""The training loop's optional periodic evaluation: a few closed-loop episodes of the EMA weights.

`robopolicy train --eval-every N` runs `--eval-episodes` episodes on the task's first fixed initial
states every N steps and logs `eval/success_rate` (and the mean episode length) to TensorBoard.
It is a progress signal, far too few episodes for a result; `robopolicy eval` gives those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from robopolicy.data.normalization import NormalizationStats
from robopolicy.errors import UserError
from robopolicy.models.policy_config import PolicyConfig


def rollout_eval_hook(
    meta: dict[str, Any], run_dir: Path, num_episodes: int, max_steps: int = 0, seed: int = 0
) -> Any:
    """A `(step, ema_params) → {"success_rate", "episode_steps"}` hook for the run described by `meta`."""
    from robopolicy.eval.policy_runner import LoadedPolicy, PolicyRunner
    from robopolicy.eval.rollout import run_episode
    from robopolicy.sim import TabletopEnv, load_init_states

    config = PolicyConfig.from_dict(meta["policy_config"])
    stats = NormalizationStats.from_dict(meta["stats"])
    task = str(meta.get("task", ""))
    if not task:
        raise UserError(f"{run_dir}: --eval-every needs a dataset that names its task")
    frame_encoder = None
    if config.encoder == "cached":
        from robopolicy.train.frame_encoder import FrameEncoder

        frame_encoder = FrameEncoder(meta["stage1_encoder"]["checkpoint"], batch_size=config.obs_horizon)
    init_states = load_init_states(task)[:num_episodes]

    def hook(step: int, ema_params: nnx.State) -> dict[str, float]:
        params = jax.device_get(ema_params)  # a host copy: the train state is donated to the next step
        policy = LoadedPolicy(config, params, stats, meta, run_dir / "checkpoints", step, frame_encoder)
        runner = PolicyRunner(policy, seed=seed)
        env = TabletopEnv(task=task, image_size=config.image_size, cameras=config.cameras)
        try:
            outcomes = [
                run_episode(env, runner, s, max_steps or env.max_steps, None)[:2] for s in init_states
            ]
        finally:
            env.close()
        return {
            "success_rate": float(np.mean([ok for ok, _ in outcomes])),
            "episode_steps": float(np.mean([n for _, n in outcomes])),
        }

    return hook
