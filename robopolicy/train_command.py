"""`robopolicy train`: policy training with the closed-loop evaluation its `--eval-*` flags ask for.

Training (`robopolicy.train.trainer.train`) sits below evaluation and takes its evaluation hook from
the caller; here the command, and the quickstart's training stage, plug in the short rollouts of
`robopolicy.eval.training_rollouts`.
"""

from __future__ import annotations

from typing import Any

from etils import epath

from robopolicy.train.loop import RunResult
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.trainer import EvalHook, EvalHookFactory, train


def rollout_hook_factory(config: TrainConfig) -> EvalHookFactory | None:
    """`config.eval_episodes` rollouts on the task's first fixed initial states, each capped at
    `config.eval_max_steps` steps, when `config.eval_every` asks for them; else None."""
    if not (config.eval_every and config.eval_episodes):
        return None

    def factory(meta: dict[str, Any], run_dir: epath.Path) -> EvalHook:
        from robopolicy.eval.training_rollouts import rollout_eval_hook

        return rollout_eval_hook(meta, run_dir, config.eval_episodes, config.eval_max_steps, config.seed)

    return factory


def train_with_rollouts(config: TrainConfig, progress: bool = True) -> RunResult:
    """`train(config)` with the rollouts `config.eval_every` asks for."""
    return train(config, progress=progress, make_eval_hook=rollout_hook_factory(config))
