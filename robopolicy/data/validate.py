"""Validation of demonstration episodes: the one implementation that reading, `robopolicy data check`
and training all use.

A check returns every `Problem` it finds rather than stopping at the first, so a user fixes a
dataset in one pass. Each problem names the dataset, the episode index and the key. Code paths that
cannot go on with a bad episode (loading for training) raise `DatasetError` with the first problem.

Problem classes: NaN or Inf values, wrong shapes or dtypes, missing keys, empty or one-step
episodes, step counts that differ between keys, and action dimensions that disagree across the
datasets of a mixture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from robopolicy.errors import UserError

if TYPE_CHECKING:
    from robopolicy.data.episode import Episode

MIN_STEPS = 2  # a window needs a current and a next step; one-step episodes carry no motion

# "floating" accepts any float dtype; any other value is an exact numpy dtype name ("uint8", "bool", ...).
DtypeRule = Literal["uint8", "float32", "floating"] | str


class DatasetError(UserError):
    """A dataset or episode that cannot be used; the message is one line naming dataset, episode and key."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one key of one episode."""

    dataset: str
    episode: int
    key: str
    message: str
    record: int | None = None  # storage position, when it differs from the episode id

    def __str__(self) -> str:
        stored = f" (record {self.record})" if self.record not in (None, self.episode) else ""
        return f"{self.dataset}: episode {self.episode}{stored}: key '{self.key}' {self.message}"


@dataclass(frozen=True)
class ArraySpec:
    """What one per-step array must look like: `shape` is per step (None = any size), `dtype` a rule."""

    shape: tuple[int | None, ...]
    dtype: DtypeRule

    def describe(self) -> str:
        dims = ", ".join(["T", *("?" if d is None else str(d) for d in self.shape)])
        return f"{self.dtype} [{dims}]"


def _dtype_ok(dtype: np.dtype, rule: DtypeRule) -> bool:
    if rule == "floating":
        return np.issubdtype(dtype, np.floating)
    return dtype == np.dtype(rule)


def check_arrays(
    arrays: Mapping[str, np.ndarray | None],
    specs: Mapping[str, ArraySpec],
    dataset: str,
    episode: int,
    length_key: str = "action",
) -> list[Problem]:
    """Every problem with one episode's per-step arrays, each stacked over steps ([T, *shape]).

    `arrays[key] is None` or an absent key means the episode lacks that key. `length_key` is the
    array whose step count the others must match and whose emptiness is reported.
    """
    problems: list[Problem] = []

    def add(key: str, message: str) -> None:
        problems.append(Problem(dataset, episode, key, message))

    present: dict[str, np.ndarray] = {}
    for key, spec in specs.items():
        arr = arrays.get(key)
        if arr is None:
            add(key, "is missing")
            continue
        if not hasattr(arr, "dtype"):  # frames decoded on demand keep their shape and dtype without decoding
            arr = np.asarray(arr)
        if not _dtype_ok(arr.dtype, spec.dtype):
            add(key, f"has wrong dtype {arr.dtype}, expected {spec.dtype}")
        elif arr.ndim != 1 + len(spec.shape) or any(
            want is not None and got != want for got, want in zip(arr.shape[1:], spec.shape, strict=False)
        ):
            add(key, f"has wrong shape {tuple(arr.shape)}, expected {spec.describe()}")
        elif np.issubdtype(arr.dtype, np.floating):
            bad = ~np.isfinite(arr).all(axis=tuple(range(1, arr.ndim)))
            if bad.any():
                steps = np.flatnonzero(bad)
                add(key, f"contains NaN or Inf at {len(steps)} step(s), first at step {steps[0]}")
        present[key] = arr

    if length_key in present:
        n = len(present[length_key])
        if n == 0:
            add(length_key, "has 0 steps: empty episode")
        elif n < MIN_STEPS:
            add(length_key, f"has {n} step: one-step episode, needs at least {MIN_STEPS} steps")
        for key, arr in present.items():
            if key != length_key and len(arr) != n:
                add(key, f"has {len(arr)} steps but '{length_key}' has {n}")
    return problems


def episode_specs(episode: Episode) -> dict[str, ArraySpec]:
    """The specs an in-memory `Episode` must meet, sized by its own state and action dimensions."""
    state_dim = episode.state.shape[-1] if episode.state.ndim == 2 else None
    action_dim = episode.action.shape[-1] if episode.action.ndim == 2 else None
    specs = {
        "action": ArraySpec((action_dim,), "floating"),
        "state": ArraySpec((state_dim,), "floating"),
        "reward": ArraySpec((), "floating"),
    }
    specs.update({f"frames/{cam}": ArraySpec((None, None, 3), "uint8") for cam in episode.frames})
    specs.update({f"embeddings/{cam}": ArraySpec((None,), "floating") for cam in episode.embeddings})
    return specs


def episode_arrays(episode: Episode) -> dict[str, np.ndarray]:
    """An `Episode`'s per-step arrays under the keys of `episode_specs`."""
    arrays = {"action": episode.action, "state": episode.state, "reward": episode.reward}
    arrays.update({f"frames/{cam}": arr for cam, arr in episode.frames.items()})
    arrays.update({f"embeddings/{cam}": arr for cam, arr in episode.embeddings.items()})
    return arrays


def check_episode(episode: Episode, dataset: str, index: int | None = None) -> list[Problem]:
    """Every problem with an in-memory episode; `index` defaults to its episode id."""
    where = episode.episode_id if index is None else index
    return check_arrays(episode_arrays(episode), episode_specs(episode), dataset, where)


def check_consistent_shapes(episodes: Sequence[Episode], dataset: str) -> list[Problem]:
    """Episodes of one dataset must share cameras and per-step shapes; the first episode sets them."""
    if not episodes:
        return []
    first = episode_arrays(episodes[0])
    ref = episodes[0].episode_id
    problems = []
    for episode in episodes[1:]:
        arrays = episode_arrays(episode)
        for key in sorted(set(first) | set(arrays)):
            if key not in arrays:
                message = f"is missing (episode {ref} has it)"
            elif key not in first:
                message = f"is not in episode {ref}"
            elif arrays[key].shape[1:] != first[key].shape[1:]:
                message = f"has per-step shape {arrays[key].shape[1:]}, which differs from episode {ref}'s {first[key].shape[1:]}"
            else:
                continue
            problems.append(Problem(dataset, episode.episode_id, key, message))
    return problems


def check_action_dims(action_dims: Mapping[str, int]) -> list[Problem]:
    """Datasets mixed into one training run must share the action dimension.

    `action_dims` maps each dataset to its action dimension; the first dataset is the reference.
    """
    items = list(action_dims.items())
    if not items:
        return []
    ref_name, ref_dim = items[0]
    return [
        Problem(
            name, 0, "action", f"has action dimension {dim}, which disagrees with {ref_dim} in {ref_name}"
        )
        for name, dim in items[1:]
        if dim != ref_dim
    ]


def raise_if_problems(problems: Sequence[Problem]) -> None:
    """Raise `DatasetError` with the first problem (and how many more there are) if there are any."""
    if problems:
        more = (
            f" (and {len(problems) - 1} more problem(s); run `robopolicy data check`)"
            if len(problems) > 1
            else ""
        )
        raise DatasetError(f"{problems[0]}{more}")


def validate_episodes(episodes: Sequence[Episode], dataset: str) -> None:
    """Raise `DatasetError` unless every episode is valid and all share shapes; for training code."""
    if not episodes:
        raise DatasetError(f"{dataset}: no episodes")
    problems = [p for i, e in enumerate(episodes) for p in check_episode(e, dataset, i)]
    raise_if_problems(problems or check_consistent_shapes(episodes, dataset))


def validate_mixture(datasets: Mapping[str, Sequence[Episode]]) -> None:
    """Validate each dataset of a mixture and that all share the action dimension."""
    for name, episodes in datasets.items():
        validate_episodes(episodes, name)
    raise_if_problems(check_action_dims({name: eps[0].action.shape[-1] for name, eps in datasets.items()}))
