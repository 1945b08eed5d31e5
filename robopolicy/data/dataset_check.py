"""`robopolicy data check`: validate every episode of one or more datasets and list every problem."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from robopolicy.data.dataset_sources import open_dataset
from robopolicy.data.episode import Episode
from robopolicy.data.validate import (
    EpisodeValues,
    Problem,
    check_action_dims,
    check_consistent_shapes,
    check_value_ranges,
)


@dataclass
class DatasetCheck:
    """What checking one dataset found."""

    path: str
    mapping: str
    episodes: int = 0
    valid_episodes: int = 0
    action_dim: int | None = None
    problems: list[Problem] = field(default_factory=list)


def check_dataset(path: str, mapping: str = "auto") -> DatasetCheck:
    """Read every episode of the dataset at `path` and collect all problems.

    Episodes are decoded one at a time. The first valid episode stays in memory as the reference for
    per-step shapes (a key whose shape differs is one problem, at the first episode that differs), and every valid episode's state and action (small) for the dataset-level check
    of values against the dataset's robust range and the mapping's declared bounds.
    """
    dataset = open_dataset(path, mapping)
    result = DatasetCheck(str(dataset), dataset.mapping.name)
    reference: Episode | None = None
    values: list[EpisodeValues] = []
    shape_problems: dict[str, list[Problem]] = {}
    for index, episode, problems in dataset.iter_episodes():
        result.episodes += 1
        result.problems += problems
        if episode is None:
            continue
        if reference is None:
            reference = episode
            result.action_dim = episode.action.shape[-1]
        else:
            differing = check_consistent_shapes([reference, episode], str(dataset))
            for problem in differing:
                shape_problems.setdefault(problem.key, []).append(problem)
            if differing:
                continue
        values.append(dataset.mapping.episode_values(episode, index))
    # One line per key, naming the first episode that differs, rather than one per episode.
    for first, *more in shape_problems.values():
        also = f" (as do {len(more)} more episode(s))" if more else ""
        result.problems.append(dataclasses.replace(first, message=first.message + also))
    value_problems = check_value_ranges(values, str(dataset), dataset.mapping.declared_bounds())
    result.problems += value_problems
    result.valid_episodes = len(values) - len({p.episode for p in value_problems})
    if result.episodes == 0:
        result.problems.append(Problem(str(dataset), 0, "steps", "is empty: the dataset has no episodes"))
    return result


def check_datasets(paths: Sequence[str], mapping: str = "auto") -> tuple[list[DatasetCheck], list[Problem]]:
    """Check each dataset, then that all share the action dimension (they may be mixed in training)."""
    results = [check_dataset(path, mapping) for path in paths]
    dims = {r.path: r.action_dim for r in results if r.action_dim is not None}
    return results, check_action_dims(dims)
