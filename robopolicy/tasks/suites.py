"""The LIBERO-style task suites: which tasks (bundled folders under `envs/`) make up each suite.

A suite is the set of bundled task folders whose name starts with its prefix, in sorted order, so adding
a task to a suite means adding its folder. Tasks in user folders (`ROBOPOLICY_TASK_PATH`, `--tasks-dir`)
join no suite, whatever their names, so a suite means the same everywhere; they run by name. A user
folder may still shadow a suite's task of the same name (`robopolicy.tasks.task_path`).
"""

from __future__ import annotations

from robopolicy.errors import UserError
from robopolicy.paths import envs_dir

SUITE_PREFIXES: dict[str, str] = {
    "libero_style_spatial": "spatial_",
    "libero_style_object": "object_",
    "libero_style_goal": "goal_",
    "libero_style_long": "long_",
    "libero_style_memory": "memory_",
}
SUITE_INTENT: dict[str, str] = {
    "libero_style_spatial": "same objects, different layouts; the instruction picks a bowl by a spatial relation",
    "libero_style_object": "one layout, different target objects to put in the basket",
    "libero_style_goal": "one scene with a drawer, a button and a switch; different goals",
    "libero_style_long": "two-stage compositions of goal-suite tasks",
    "libero_style_memory": "success needs information that is no longer visible when it matters",
}


class UnknownSuiteError(UserError):
    """A suite name that is not one of `list_suites()`."""


def list_suites() -> list[str]:
    """Names of all suites."""
    return list(SUITE_PREFIXES)


def suite_tasks(suite: str) -> list[str]:
    """Task names of a suite, sorted; raises `UnknownSuiteError` for an unknown suite."""
    if suite not in SUITE_PREFIXES:
        raise UnknownSuiteError(f"unknown suite {suite!r}; choose one of {', '.join(SUITE_PREFIXES)}")
    prefix = SUITE_PREFIXES[suite]
    return sorted(
        p.name for p in envs_dir().iterdir() if p.name.startswith(prefix) and (p / "task.toml").is_file()
    )
