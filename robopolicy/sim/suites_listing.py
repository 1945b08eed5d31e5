"""`robopolicy suites`: the suites, their tasks and instructions, as text."""

from __future__ import annotations

from dataclasses import dataclass

from robopolicy.sim.scene_spec import load_spec
from robopolicy.sim.suites import SUITE_INTENT, list_suites, suite_tasks


@dataclass(frozen=True)
class SuitesConfig:
    """List the task suites.

    Attributes:
        suite: only this suite (default: all).
    """

    suite: str = ""


def format_suites(config: SuitesConfig) -> str:
    """One block per suite: its intent, then one `task: instruction` line per task."""
    suites = [config.suite] if config.suite else list_suites()
    blocks = []
    for suite in suites:
        tasks = suite_tasks(suite)
        width = max((len(t) for t in tasks), default=0)
        lines = [f"{suite} ({len(tasks)} tasks): {SUITE_INTENT[suite]}"]
        lines += [f"  {task:<{width}}  {load_spec(task).instruction}" for task in tasks]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
