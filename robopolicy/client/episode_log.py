"""Episode logs: evaluation episodes written as JSON lines where robopolicy's results store cannot be
imported (another simulator's environment, with the client alone), and read into a results database
by `robopolicy results import LOG --db RESULTS.db`.

Each line is one finished episode of one run:

    {"run": {"policy": ..., "checkpoint_step": ..., "config_hash": ..., "settings": {...}},
     "episode": {"task": ..., "init_state_id": ..., "seed": ..., "success": ..., ...}}

"run" holds the arguments of `ResultsStore.register_run`; "episode" holds the fields of
`robopolicy.eval.results_store.EpisodeRecord`, the one definition of an episode's columns (the import
builds that record from it and refuses a line with a field it does not have). A log is appended to one
line at a time, flushed and synced, so an interrupted evaluation keeps every episode it finished and
an evaluation resumed on the same log skips them (`EpisodeLog.finished`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class EpisodeLogError(ValueError):
    """A line of an episode log that is not an episode of this format."""


@dataclass(frozen=True)
class LoggedRun:
    """The run an episode belongs to: as in the results store's `runs` table."""

    policy: str
    checkpoint_step: int
    config_hash: str
    settings: dict[str, Any]


def server_policy_id(uri: str, metadata: Mapping[str, Any]) -> str:
    """A policy server's run policy in the results store: its address, and the server's policy when the
    metadata names one (`ws://HOST:PORT#<checkpoint>`)."""
    name = metadata.get("policy")
    return f"{uri}#{name}" if isinstance(name, str) and name else uri


def server_step(metadata: Mapping[str, Any]) -> int:
    """The checkpoint step a policy server's metadata names (0 when it names none)."""
    step = metadata.get("step", 0)
    return step if isinstance(step, int) and not isinstance(step, bool) else 0


def read_episode_log(path: str | Path) -> Iterator[tuple[int, LoggedRun, dict[str, Any]]]:
    """(line number, run, episode fields) of every line of a log; `EpisodeLogError` on a bad line.
    A last line cut short by a kill (no newline, not JSON) is skipped: its episode never finished."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):  # the unterminated last line of an interrupted write
                return
            raise EpisodeLogError(f"{path}:{number}: not JSON ({e})") from None
        if not isinstance(value, dict) or not isinstance(value.get("episode"), dict):
            raise EpisodeLogError(f"{path}:{number}: not an episode line (needs 'run' and 'episode' maps)")
        try:
            run = LoggedRun(**value["run"])
        except TypeError as e:
            raise EpisodeLogError(f"{path}:{number}: bad 'run' ({e})") from None
        yield number, run, value["episode"]


class EpisodeLog:
    """The episodes of one run in a log file (created on the first episode)."""

    def __init__(self, path: str | Path, run: LoggedRun) -> None:
        self.path = Path(path)
        self.run = run

    def finished(self) -> set[tuple[str, int, int]]:
        """(task, init_state_id, seed) of this run's episodes already in the log."""
        if not self.path.is_file():
            return set()
        return {
            (e["task"], int(e["init_state_id"]), int(e["seed"]))
            for _, run, e in read_episode_log(self.path)
            if run == self.run
        }

    def append(self, episode: Mapping[str, Any]) -> None:
        """Write one finished episode (the fields of `EpisodeRecord`), on disk before returning."""
        line = json.dumps({"run": asdict(self.run), "episode": dict(episode)}, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
