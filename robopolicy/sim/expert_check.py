"""`robopolicy expert-check`: success of the scripted expert on every task's fixed initial states.

Runs physics only (no rendering): the expert reads privileged state, so images would change nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from robopolicy.sim.env import EnvConfig, TabletopEnv
from robopolicy.sim.expert import make_expert, run_expert_episode
from robopolicy.sim.init_states import NUM_INIT_STATES, load_init_states
from robopolicy.tasks.spec import load_task_spec
from robopolicy.tasks.suites import suite_tasks


@dataclass(frozen=True)
class ExpertCheckConfig:
    """Check the scripted experts of a suite, or of named tasks.

    Attributes:
        suite: suite name (see `robopolicy suites`); used when no tasks are named.
        tasks: check these tasks instead (any task on the task search path, in a suite or not).
        num_states: how many of the fixed initial states to use, from the first.
    """

    suite: str = "libero_style_spatial"
    tasks: tuple[str, ...] = ()
    num_states: int = NUM_INIT_STATES

    def __post_init__(self) -> None:
        if not 1 <= self.num_states <= NUM_INIT_STATES:
            raise ValueError(
                f"ExpertCheckConfig: num_states must be in [1, {NUM_INIT_STATES}], got {self.num_states}"
            )


@dataclass(frozen=True)
class TaskCheck:
    task: str
    successes: int
    episodes: int
    mean_steps: float
    max_steps: int
    seconds: float
    failures: dict[str, int]  # failure reason -> count

    @property
    def rate(self) -> float:
        return self.successes / self.episodes


def check_task(task: str, num_states: int = NUM_INIT_STATES, bar: tqdm | None = None) -> TaskCheck:
    """Run the expert once from each of the first `num_states` fixed initial states of `task`."""
    env = TabletopEnv(config=EnvConfig(task=task, render=False))
    t0 = time.perf_counter()
    try:
        states = load_init_states(task, env)[:num_states]
        expert = make_expert(env)
        successes, lengths, reasons = 0, [], Counter()
        for state in states:
            rollout = run_expert_episode(env, init_state=state, expert=expert)
            successes += int(rollout["success"])
            lengths.append(int(rollout["num_steps"]))
            if not rollout["success"]:
                reasons[str(rollout["failure_reason"])] += 1
            if bar is not None:
                bar.update(1)
    finally:
        env.close()
    return TaskCheck(
        task=task,
        successes=successes,
        episodes=len(states),
        mean_steps=float(np.mean(lengths)),
        max_steps=int(np.max(lengths)),
        seconds=time.perf_counter() - t0,
        failures=dict(reasons),
    )


def checked_label(config: ExpertCheckConfig) -> str:
    """What a check covers: its tasks, or else its suite."""
    return ", ".join(config.tasks) if config.tasks else config.suite


def run_expert_check(config: ExpertCheckConfig, progress: bool = True) -> list[TaskCheck]:
    tasks = list(config.tasks) or suite_tasks(config.suite)
    for task in tasks:
        load_task_spec(task)  # an unknown task or a broken spec fails here, before any progress output
    bar = tqdm(
        total=len(tasks) * config.num_states,
        desc=f"expert-check {checked_label(config)}",
        unit="ep",
        disable=not progress,
    )
    try:
        return [check_task(task, config.num_states, bar) for task in tasks]
    finally:
        bar.close()


def format_table(label: str, results: list[TaskCheck]) -> str:
    """Markdown table of per-task expert success, with a total row; `label` says what was checked."""
    lines = [
        f"expert success on the fixed initial states of {label}",
        "",
        "| task | success | rate | mean steps | max steps | failures |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        fails = "; ".join(f"{n}× {reason}" for reason, n in r.failures.items()) or "–"
        lines.append(
            f"| {r.task} | {r.successes}/{r.episodes} | {100 * r.rate:.0f} % | {r.mean_steps:.1f} | {r.max_steps} | {fails} |"
        )
    total = sum(r.successes for r in results)
    episodes = sum(r.episodes for r in results)
    lines.append(f"| **all** | {total}/{episodes} | {100 * total / max(episodes, 1):.1f} % | | | |")
    return "\n".join(lines)
