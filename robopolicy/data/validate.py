"""Validation of demonstration episodes: the one implementation that reading, `robopolicy data check`
and training all use.

A check returns every `Problem` it finds rather than stopping at the first, so a user fixes a
dataset in one pass. Each problem names the dataset, the episode index and the key. Code paths that
cannot go on with a bad episode (loading for training) raise `DatasetError` with the first problem.

Problem classes: NaN or Inf values, wrong shapes or dtypes, missing keys, empty or one-step
episodes, step counts that differ between keys, inconsistent RLDS `is_first`/`is_last` flags, per-step
shapes that differ between episodes, state or action values far outside the dataset's own robust
range (`robust_range`) or outside an action's declared bounds, and action dimensions that disagree
across the datasets of a mixture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from jaxtyping import Bool, Float

from robopolicy.data.robust_range import OUTLIER_MADS, RobustRange, outside
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


def check_rlds_flags(
    is_first: Bool[np.ndarray, " t"] | None,
    is_last: Bool[np.ndarray, " t"] | None,
    dataset: str,
    episode: int,
    keys: tuple[str, str] = ("is_first", "is_last"),
) -> list[Problem]:
    """RLDS marks an episode's boundaries: `is_first` True at step 0 only, `is_last` True at the last
    step only. A None flag (the dataset has no such key) is not checked; `keys` name the two in problems."""
    problems = []
    for flags, key, edge in ((is_first, keys[0], "first"), (is_last, keys[1], "last")):
        if flags is None or len(flags) == 0:
            continue
        flags = np.asarray(flags, bool)
        edge_step = 0 if edge == "first" else len(flags) - 1
        if not flags[edge_step]:
            problems.append(Problem(dataset, episode, key, f"is False at step {edge_step}, the {edge} step"))
        others = np.flatnonzero(np.delete(flags, edge_step))
        if len(others):
            steps = others + (1 if edge == "first" else 0)
            problems.append(
                Problem(
                    dataset,
                    episode,
                    key,
                    f"is True at {len(steps)} step(s) other than the {edge}, first at step {steps[0]}",
                )
            )
    return problems


@dataclass(frozen=True)
class EpisodeValues:
    """One episode's low-dimensional per-step arrays (source key → float [T, D]), kept for the
    dataset-level value check while its images are let go."""

    episode: int
    arrays: Mapping[str, Float[np.ndarray, "t d"]]
    record: int | None = None


Bounds = tuple[tuple[float, float], ...]  # per dimension: (low, high)


def check_value_ranges(
    episodes: Sequence[EpisodeValues], dataset: str, declared: Mapping[str, Bounds] | None = None
) -> list[Problem]:
    """Values far outside the dataset's own robust range (`RobustRange`, over all episodes), or outside
    the `declared` per-dimension bounds of a key: one problem per episode, key and dimension, naming
    the first offending step and value. Declared bounds, where violated, take precedence."""
    declared = declared or {}
    keys = sorted({key for e in episodes for key in e.arrays})
    ranges = {
        key: RobustRange.of(np.concatenate([e.arrays[key] for e in episodes if key in e.arrays]))
        for key in keys
    }
    problems = []
    for e in episodes:
        for key in keys:
            if key not in e.arrays:
                continue
            values = np.asarray(e.arrays[key])
            wild = outside(values, ranges[key].low, ranges[key].high)
            beyond = np.zeros_like(wild)
            if key in declared:  # one (low, high) per dimension; the shape checks made the counts agree
                low, high = np.asarray(declared[key], np.float64).T
                beyond = outside(values, low, high)
            for dim in np.flatnonzero(wild.any(axis=0) | beyond.any(axis=0)):
                if beyond[:, dim].any():
                    steps = np.flatnonzero(beyond[:, dim])
                    why = f"outside the declared bounds [{low[dim]:g}, {high[dim]:g}]"
                else:
                    steps = np.flatnonzero(wild[:, dim])
                    lo, hi = ranges[key].low[dim], ranges[key].high[dim]
                    why = f"far outside the dataset's range [{lo:.4g}, {hi:.4g}] (median ± {OUTLIER_MADS:g} MAD)"
                count = f" ({len(steps)} steps in all)" if len(steps) > 1 else ""
                message = f"dim {dim} is {values[steps[0], dim]:.4g} at step {steps[0]}{count}, {why}"
                problems.append(Problem(dataset, e.episode, key, message, record=e.record))
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
