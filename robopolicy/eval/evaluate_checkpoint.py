"""`robopolicy eval`: a checkpoint × a task's fixed initial states → results.json, video, Wilson interval."""

from __future__ import annotations

import json
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.eval.eval_config import EvalConfig, parse_index_range
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.eval.rollout import EvalSummary, evaluate
from robopolicy.sim import TabletopEnv, load_init_states
from robopolicy.train.loaded_policy import load_policy


def evaluate_checkpoint(config: EvalConfig, progress: bool = True) -> tuple[EvalSummary, Path]:
    """Run the evaluation and write `results.json`; returns the summary and the results path."""
    policy = load_policy(config.checkpoint)
    task = config.task or str(policy.meta.get("task", ""))
    if not task:
        raise UserError(f"{config.checkpoint}: checkpoint names no task; pass --task")
    init_states = load_init_states(task)
    try:
        ids = parse_index_range(config.init_states, len(init_states))
    except ValueError as e:
        raise UserError(f"--init-states: {e}") from e

    out = Path(config.out) if config.out else policy.checkpoint_dir.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    env = TabletopEnv(task=task, image_size=policy.config.image_size, cameras=policy.config.cameras)
    try:
        summary = evaluate(
            PolicyRunner(policy, seed=config.seed),
            env,
            init_states,
            ids,
            checkpoint=str(policy.checkpoint_dir / str(policy.step)),
            max_steps=config.max_steps or None,
            video_path=out / "rollouts.mp4" if config.video_episodes > 0 else None,
            video_episodes=config.video_episodes,
            progress=progress,
        )
    finally:
        env.close()
    results_path = out / "results.json"
    results_path.write_text(json.dumps(summary.to_json(), indent=2))
    return summary, results_path


def format_summary(summary: EvalSummary) -> str:
    """One line: task, success k/n, rate and its 95 % Wilson interval."""
    data = summary.to_json()
    low, high = data["wilson95"]
    return (
        f"{summary.task}: success {summary.successes}/{len(summary.episodes)} = {summary.success_rate:.1%} "
        f"(95% Wilson CI {low:.1%}–{high:.1%})"
    )
