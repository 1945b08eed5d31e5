"""LIBERO's four evaluation suites as the client runs them: step caps, and tasks and initial states
picked by the user.

Step caps are openpi's LIBERO example values (examples/libero/main.py), each a little above the
longest human demonstration of the suite (193, 254, 270 and 505 steps); the settle steps at the start
of an episode come on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robopolicy_libero.errors import ClientInputError

MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}


@dataclass(frozen=True)
class LiberoTask:
    """One task of a suite: its index, name, instruction, BDDL file and fixed initial states."""

    suite: str
    index: int
    name: str
    instruction: str
    bddl_file: str
    init_states: Any  # float64 [n, state_size], LIBERO's own, in LIBERO's order

    @property
    def max_steps(self) -> int:
        return MAX_STEPS[self.suite]


def _benchmark(suite: str) -> Any:
    if suite not in MAX_STEPS:
        raise ClientInputError(f"unknown suite {suite!r}; choose one of {', '.join(MAX_STEPS)}")
    from libero.libero import benchmark

    return benchmark.get_benchmark(suite)()


def suite_tasks(suite: str, spec: str = "") -> list[LiberoTask]:
    """The tasks of `suite` that `spec` names: comma-separated indices, index ranges (`0-4`) or task
    names; "" for all of them. `ClientInputError` names an unknown task and lists the suite's tasks."""
    from pathlib import Path

    from libero.libero import get_libero_path

    bench = _benchmark(suite)
    names = [bench.get_task(i).name for i in range(bench.get_num_tasks())]
    indices: list[int] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()) if spec else [f"0-{len(names) - 1}"]:
        first, dash, last = part.partition("-")
        if part in names:
            indices.append(names.index(part))
        elif first.isdigit() and (not dash or last.isdigit()) and int(last if dash else first) < len(names):
            indices.extend(range(int(first), int(last if dash else first) + 1))
        else:
            raise ClientInputError(
                f"unknown task {part!r} in {suite}: give indices 0-{len(names) - 1} or one of its task "
                f"names ({', '.join(names)})"
            )
    tasks = []
    for i in dict.fromkeys(indices):
        task = bench.get_task(i)
        bddl = Path(get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file
        tasks.append(LiberoTask(suite, i, task.name, task.language, str(bddl), bench.get_task_init_states(i)))
    return tasks


def init_state_ids(spec: str, available: int) -> list[int]:
    """The initial-state ids a range `A:B` (B excluded; `A:` to the end) or a single id names."""
    first, colon, last = spec.partition(":")
    try:
        start = int(first or 0)
        stop = (int(last) if last else available) if colon else start + 1
    except ValueError:
        raise ClientInputError(f"--init-states {spec!r}: give A:B (B excluded), A: or one id") from None
    if not 0 <= start < stop <= available:
        raise ClientInputError(f"--init-states {spec!r}: the tasks have initial states 0 to {available - 1}")
    return list(range(start, stop))
