"""`robopolicy eval --checkpoint`: a checkpoint × a task's fixed initial states → results.json, video,
Wilson interval; and `evaluate_policy`, the same for a policy in memory (notebooks, training).

Episodes run through the one episode loop on an env in this process, so they are the same episodes
as those of a stored evaluation: episode i starts from initial state i, and its sampling noise comes
from (task, initial state, seed).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robopolicy.errors import UserError
from robopolicy.eval.action_selector import ActionSelector
from robopolicy.eval.episode_loop import EpisodeItem, run_episodes
from robopolicy.eval.eval_config import EvalConfig, parse_index_range
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord
from robopolicy.eval.stats import wilson_interval
from robopolicy.eval.video import write_mp4
from robopolicy.sim.in_process_env import make_in_process
from robopolicy.train.loaded_policy import LoadedPolicy, load_policy


@dataclass(frozen=True)
class EpisodeResult:
    init_state_id: int
    success: bool
    steps: int
    wall_seconds: float
    failure_reason: str | None


@dataclass
class EvalSummary:
    task: str
    instruction: str
    checkpoint: str
    checkpoint_step: int
    episodes: list[EpisodeResult]
    timings: dict[str, float] = field(default_factory=dict)
    video: str | None = None

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.episodes) if self.episodes else float("nan")

    def to_json(self) -> dict[str, Any]:
        low, high = wilson_interval(self.successes, len(self.episodes))
        return {
            "task": self.task,
            "instruction": self.instruction,
            "checkpoint": self.checkpoint,
            "checkpoint_step": self.checkpoint_step,
            "num_episodes": len(self.episodes),
            "successes": self.successes,
            "success_rate": self.success_rate,
            "wilson95": [low, high],
            "timings": self.timings,
            "video": self.video,
            "episodes": [asdict(e) for e in self.episodes],
        }


class _Collect:
    """Keeps the records, in order, and the frames of the filmed episodes for one video."""

    def __init__(self, bar: Any) -> None:
        self.records: list[EpisodeRecord] = []
        self.frames: list[np.ndarray] = []
        self.bar = bar

    def claim(self, item: EpisodeItem) -> bool:
        return True

    def done(self, item: EpisodeItem, record: EpisodeRecord, frames: list[np.ndarray] | None) -> None:
        self.records.append(record)
        self.frames.extend(frames or [])
        self.bar.update(1)
        self.bar.set_postfix(success=f"{sum(r.success for r in self.records)}/{len(self.records)}")


def evaluate_policy(
    policy: LoadedPolicy,
    task: str,
    init_state_ids: list[int],
    *,
    execution: ExecutionSettings | None = None,
    seed: int = 0,
    video_path: Path | None = None,
    video_episodes: int = 4,
    progress: bool = True,
) -> EvalSummary:
    """One episode per initial state of `task` (episode i on state `init_state_ids[i]`, sampling seed
    `seed`), in this process; the first `video_episodes` go into one video at `video_path`."""
    execution = execution or ExecutionSettings()
    filmed = set(init_state_ids[:video_episodes]) if video_path is not None else set()
    items = [
        EpisodeItem(0, "", EpisodeKey(task, i, seed), video_path if i in filmed else None)
        for i in init_state_ids
    ]
    bar = tqdm(total=len(items), desc="eval", unit="ep", disable=not progress, dynamic_ncols=True)
    sink = _Collect(bar)
    selector = ActionSelector(policy, 1, execution)
    t_start = time.perf_counter()
    try:
        run_episodes({task: deque(items)}, selector, execution, sink, make_in_process)
    finally:
        bar.close()
    total = time.perf_counter() - t_start
    video = str(write_mp4(video_path, sink.frames)) if video_path is not None and sink.frames else None
    return EvalSummary(
        task=task,
        instruction=sink.records[0].instruction if sink.records else "",
        checkpoint=policy.where,
        checkpoint_step=policy.step,
        episodes=[
            EpisodeResult(r.init_state_id, r.success, r.steps, r.wall_seconds, r.failure_reason)
            for r in sink.records
        ],
        timings={
            "total_seconds": total,
            "policy_seconds": selector.inference_seconds,
            "policy_calls": float(selector.num_calls),
            "physics_seconds": sum(r.physics_seconds for r in sink.records),
            "render_seconds": sum(r.render_seconds for r in sink.records),
        },
        video=video,
    )


def evaluate_checkpoint(config: EvalConfig, progress: bool = True) -> tuple[EvalSummary, Path]:
    """Run the evaluation and write `results.json`; returns the summary and the results path."""
    from robopolicy.sim import load_init_states

    policy = load_policy(config.checkpoint)
    task = config.task or str(policy.meta.get("task", ""))
    if not task:
        raise UserError(f"{config.checkpoint}: checkpoint names no task; pass --task")
    try:
        ids = parse_index_range(config.init_states, len(load_init_states(task)))
    except ValueError as e:
        raise UserError(f"--init-states: {e}") from e
    out = Path(config.out) if config.out else policy.checkpoint_dir.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    execution = config.execution
    if config.max_steps:
        execution = replace(execution, max_steps=config.max_steps)
    summary = evaluate_policy(
        policy,
        task,
        ids,
        execution=execution,
        seed=config.seed,
        video_path=out / "rollouts.mp4" if config.video_episodes > 0 else None,
        video_episodes=config.video_episodes,
        progress=progress,
    )
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
