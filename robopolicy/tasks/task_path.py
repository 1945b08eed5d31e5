"""Where tasks are found: one function resolves a task name to its folder.

A task is a folder `<task>/task.toml` (plus `init_states.npz`, its fixed evaluation states). The
folders listed in `ROBOPOLICY_TASK_PATH` (separated by `os.pathsep`, like `PATH`) are searched first,
in order, then the bundled `envs/`; the first folder holding the task wins, so a user folder can
shadow a bundled task of the same name. A variant of a task (`TASK+oracle`, `robopolicy.tasks.variants`)
resolves to the task's own folder. Worker processes inherit the variable, so they resolve
names the same way as their parent; `robopolicy ... --tasks-dir DIR` prepends DIR to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.paths import envs_dir, search_path
from robopolicy.tasks.variants import split_variant

TASK_PATH_ENV = "ROBOPOLICY_TASK_PATH"
TASK_FILE = "task.toml"


class UnknownTaskError(UserError):
    """No folder on the task search path holds the named task."""


def task_search_path() -> tuple[Path, ...]:
    """The folders searched for tasks, in order: `ROBOPOLICY_TASK_PATH`'s, then the bundled `envs/`."""
    return search_path(TASK_PATH_ENV, envs_dir())


def prepend_task_dirs(folders: Sequence[str | Path]) -> None:
    """Search `folders`, in order, ahead of the current `ROBOPOLICY_TASK_PATH`, in this process and
    the processes it starts (they inherit the environment): what `--tasks-dir DIR` does."""
    for folder in folders:
        if not os.path.isdir(folder):
            raise UserError(f"--tasks-dir {str(folder)!r}: no such folder")
    if folders:
        previous = os.environ.get(TASK_PATH_ENV, "")
        dirs = [os.path.abspath(f) for f in folders]
        os.environ[TASK_PATH_ENV] = os.pathsep.join([*dirs, *([previous] if previous else [])])


def find_task(task: str) -> Path:
    """The folder of `task`: `<folder>/<task>` for the first folder on the search path that has it
    (a variant, `TASK+oracle`, is found as TASK)."""
    task = split_variant(task)[0]
    if not task or Path(task).name != task or task in (".", ".."):
        raise UnknownTaskError(f"task names are folder names, got {task!r}")
    searched = task_search_path()
    for folder in searched:
        if (folder / task / TASK_FILE).is_file():
            return folder / task
    where = ", ".join(f"{f}" if f.is_dir() else f"{f} (missing)" for f in searched)
    raise UnknownTaskError(f"unknown task {task!r}: no {task}/{TASK_FILE} in {where}")


def task_names() -> dict[str, Path]:
    """Every task on the search path -> its folder (the first one, as `find_task` picks), sorted by name."""
    found: dict[str, Path] = {}
    for folder in task_search_path():
        if folder.is_dir():
            for sub in folder.iterdir():
                if (sub / TASK_FILE).is_file():
                    found.setdefault(sub.name, sub)
    return dict(sorted(found.items()))
