"""Statistics of a dataset, computed once and stored as JSON next to it.

`STATS_FILE` sits in the dataset's version folder (beside `dataset_info.json`) and holds, per key,
mean/std/min/max/q01/q99 over every step, plus the words of the instruction vocabulary. Training reads
it instead of scanning the dataset again and copies what the policy needs into every checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robopolicy.data.episode import Episode
from robopolicy.data.instruction_vocab import InstructionVocab
from robopolicy.data.normalization import KeyStats
from robopolicy.errors import UserError

STATS_FILE = "robopolicy_stats.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DatasetStats:
    """Per-key step statistics, the sorted vocabulary words and the counts they were computed on."""

    keys: dict[str, KeyStats]
    words: tuple[str, ...]
    num_episodes: int
    num_steps: int

    @classmethod
    def compute(cls, episodes: Sequence[Episode]) -> DatasetStats:
        if not episodes:
            raise ValueError("cannot compute statistics of a dataset with no episodes")
        keys = {
            "action": KeyStats.compute(np.concatenate([e.action for e in episodes])),
            "state": KeyStats.compute(np.concatenate([e.state for e in episodes])),
        }
        words = InstructionVocab.build([e.instruction for e in episodes], max_length=1).words
        return cls(keys, words, len(episodes), int(sum(len(e) for e in episodes)))

    def vocab(self, max_length: int) -> InstructionVocab:
        return InstructionVocab(self.words, max_length)

    def matches(self, episodes: Sequence[Episode]) -> bool:
        """Whether these stats were computed on a dataset of the same size as `episodes`."""
        return self.num_episodes == len(episodes) and self.num_steps == sum(len(e) for e in episodes)

    def to_dict(self) -> dict[str, object]:
        return {
            "format_version": _FORMAT_VERSION,
            "num_episodes": self.num_episodes,
            "num_steps": self.num_steps,
            "keys": {k: v.to_dict() for k, v in self.keys.items()},
            "words": list(self.words),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DatasetStats:
        return cls(
            keys={k: KeyStats.from_dict(v) for k, v in d["keys"].items()},
            words=tuple(d["words"]),
            num_episodes=int(d["num_episodes"]),
            num_steps=int(d["num_steps"]),
        )

    def save(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stats-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> DatasetStats:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: unreadable dataset statistics ({e}); delete it to recompute") from e


def load_or_compute_stats(dataset_dir: Path | None, episodes: Sequence[Episode]) -> DatasetStats:
    """The stored statistics of the dataset at `dataset_dir`, computed and stored on first use.

    Stats stored for a dataset of another size (episodes added or removed since) are recomputed. With
    no folder, or a read-only one, the stats are computed in memory only.
    """
    path = dataset_dir / STATS_FILE if dataset_dir is not None else None
    if path is not None and path.is_file():
        stored = DatasetStats.load(path)
        if stored.matches(episodes):
            return stored
    stats = DatasetStats.compute(episodes)
    if path is not None and os.access(path.parent, os.W_OK):
        stats.save(path)
    return stats
