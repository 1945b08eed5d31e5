"""Task variants: `TASK+oracle` runs a task differently under its own name, from the same folder.

A variant is a suffix on a task name after a '+' (so task folder names have no '+'). It resolves to
the task's own folder, spec and fixed initial states, and keeps the task's scene and random streams (the same layouts and cue
choices, seed for seed), so results of a task and of its variant pair up state by state. It keeps its
own name wherever results are kept (a dataset episode's `task`, the results store's `task` column), so
that they are never mixed up with the task's own.

Variants:

- `oracle`, for tasks with a `[cue]`: the cue stays lit for the whole episode, so no memory is needed.
  It is the control that shows a memory task is learnable at a given config: a policy that fails the
  oracle arm lacks capacity, not memory.
"""

from __future__ import annotations

from robopolicy.errors import UserError

SEPARATOR = "+"  # reserved in task names; safe in shells, paths and checkpoint folders, unlike brackets
ORACLE = "oracle"
VARIANTS: tuple[str, ...] = (ORACLE,)


class UnknownVariantError(UserError):
    """A task name has a suffix after '+' that names no variant."""


def split_variant(task: str) -> tuple[str, str | None]:
    """(the task's own name, its variant or None): "memory_x+oracle" -> ("memory_x", "oracle")."""
    if SEPARATOR not in task:
        return task, None
    base, _, variant = task.partition(SEPARATOR)
    if variant not in VARIANTS or not base:
        raise UnknownVariantError(
            f"task {task!r}: after '{SEPARATOR}' a task name takes one variant "
            f"({', '.join(VARIANTS)}), got {variant!r}"
        )
    return base, variant


def with_variant(task: str, variant: str | None) -> str:
    """The name of `task` run as `variant` ("memory_x", "oracle" -> "memory_x+oracle"; None: `task`)."""
    if variant is None:
        return task
    if variant not in VARIANTS:
        raise UnknownVariantError(f"unknown task variant {variant!r}; variants: {', '.join(VARIANTS)}")
    return f"{split_variant(task)[0]}{SEPARATOR}{variant}"


def oracle_task(task: str) -> str:
    """The oracle arm of a cue task: "memory_x" -> "memory_x+oracle"."""
    return with_variant(task, ORACLE)
