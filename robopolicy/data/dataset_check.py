"""`robopolicy data check`: validate every episode of one or more datasets and list every problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import RldsDataset, iter_episodes
from robopolicy.data.validate import Problem, check_action_dims, check_consistent_shapes


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

    Only the first valid episode stays in memory, as the reference for per-step shapes.
    """
    dataset = RldsDataset(path, mapping)
    result = DatasetCheck(str(dataset), dataset.mapping.name)
    reference: Episode | None = None
    for _, episode, problems in iter_episodes(dataset):
        result.episodes += 1
        result.problems += problems
        if episode is None:
            continue
        if reference is None:
            reference = episode
            result.action_dim = episode.action.shape[-1]
        else:
            shape_problems = check_consistent_shapes([reference, episode], str(dataset))
            result.problems += shape_problems
            if shape_problems:
                continue
        result.valid_episodes += 1
    if result.episodes == 0:
        result.problems.append(Problem(str(dataset), 0, "steps", "is empty: the dataset has no episodes"))
    return result


def check_datasets(paths: Sequence[str], mapping: str = "auto") -> tuple[list[DatasetCheck], list[Problem]]:
    """Check each dataset, then that all share the action dimension (they may be mixed in training)."""
    results = [check_dataset(path, mapping) for path in paths]
    dims = {r.path: r.action_dim for r in results if r.action_dim is not None}
    return results, check_action_dims(dims)
