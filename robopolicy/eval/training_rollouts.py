"""The training loop's optional periodic evaluation: a few closed-loop episodes of the EMA weights.

`robopolicy train --eval-every N` runs `--eval-episodes` episodes on the task's first fixed initial
states every N steps and logs `eval/success_rate` (and the mean episode length) to TensorBoard.
It is a progress signal, far too few episodes for a result; `robopolicy eval` gives those.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from etils import epath
from flax import nnx

from robopolicy.data.normalization import NormalizationStats
from robopolicy.errors import UserError
from robopolicy.eval.evaluate_checkpoint import evaluate_policy
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.train.loaded_policy import LoadedPolicy, policy_config_from_meta


def rollout_eval_hook(
    meta: dict[str, Any], run_dir: epath.Path, num_episodes: int, max_steps: int = 0, seed: int = 0
) -> Any:
    """A `(step, ema_params) → {"success_rate", "episode_steps"}` hook for the run described by `meta`:
    the episodes run through the one episode loop (`evaluate_policy`), in this process."""
    config = policy_config_from_meta(meta)
    stats = NormalizationStats.from_dict(meta["stats"])
    task = str(meta.get("task", ""))
    if not task:
        raise UserError(f"{run_dir}: --eval-every needs a dataset that names its task")
    frame_encoder = None
    if config.encoder == "cached":
        from robopolicy.train.frame_encoder import FrameEncoder

        frame_encoder = FrameEncoder(meta["stage1_encoder"]["checkpoint"], batch_size=config.obs_horizon)
    execution = ExecutionSettings(max_steps=max_steps)

    def hook(step: int, ema_params: nnx.State) -> dict[str, float]:
        params = jax.device_get(ema_params)  # a host copy: the train state is donated to the next step
        policy = LoadedPolicy(config, params, stats, meta, run_dir / "checkpoints", step, frame_encoder)
        summary = evaluate_policy(
            policy, task, list(range(num_episodes)), execution=execution, seed=seed, progress=False
        )
        return {
            "success_rate": summary.success_rate,
            "episode_steps": float(np.mean([e.steps for e in summary.episodes])),
        }

    return hook
