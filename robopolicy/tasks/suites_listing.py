"""`robopolicy suites`: the suites, their tasks and instructions, and the tasks outside any suite, as text."""

from __future__ import annotations

from dataclasses import dataclass

from robopolicy.tasks.spec import load_task_spec
from robopolicy.tasks.suites import SUITE_INTENT, list_suites, suite_tasks
from robopolicy.tasks.task_path import task_names


@dataclass(frozen=True)
class SuitesConfig:
    """List the task suites, then the tasks that belong to none (bundled or in user task folders).

    Attributes:
        suite: only this suite (default: all, and the tasks outside them).
    """

    suite: str = ""


def _block(title: str, tasks: list[str]) -> str:
    width = max((len(t) for t in tasks), default=0)
    return "\n".join([title, *(f"  {task:<{width}}  {load_task_spec(task).instruction}" for task in tasks)])


def format_suites(config: SuitesConfig) -> str:
    """One block per suite: its intent, then one `task: instruction` line per task."""
    suites = [config.suite] if config.suite else list_suites()
    blocks = []
    for suite in suites:
        tasks = suite_tasks(suite)
        blocks.append(_block(f"{suite} ({len(tasks)} tasks): {SUITE_INTENT[suite]}", tasks))
    if not config.suite:
        in_suites = {t for suite in suites for t in suite_tasks(suite)}
        others = [t for t in task_names() if t not in in_suites]
        blocks.append(_block(f"other tasks ({len(others)}): in no suite; run them by name", others))
    return "\n\n".join(blocks)
