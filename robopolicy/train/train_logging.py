"""Where a run's metrics go: a JSON-lines log, TensorBoard event files and, optionally, wandb.

All three live under the run folder (wandb also online, if configured): `train_log.jsonl` (one
object per read-out or evaluation), `tensorboard/` (scalars `train/loss`, `train/grad_norm`,
`train/lr`, `train/steps_per_s`, the objective's other metrics, and what evaluation hooks return
under `eval/`). In a bucket (`gs://...`) the event files go through `etils.epath`, as every other
file of a run does, instead of tensorboardX's own bucket writers. A resumed run first drops what the crashed one logged past the checkpoint it resumes
from, so every step appears once; wandb continues the same run, whose id is kept in the run folder.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from etils import epath

from robopolicy.errors import UserError
from robopolicy.paths import is_url

LOG_FILE = "train_log.jsonl"
WANDB_ID_FILE = "wandb_run_id"


@dataclass(frozen=True)
class LogConfig:
    """How often and where a run's metrics are logged.

    Attributes:
        every: steps between loss read-outs (each forces a device sync, so not every step).
        wandb_project: also log to this wandb project (needs the wandb package; "" = off); a resumed
            run continues the same wandb run, whose id is kept in `out/wandb_run_id`. TensorBoard
            event files are always written to `out/tensorboard/`.
    """

    every: int = 50
    wandb_project: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"LogConfig: every must be a positive integer, got {self.every!r}")


class RunLogger:
    """Writes the metrics of a run that starts (or resumes) at step `start`; `close()` flushes.

    On hosts other than the first (`primary=False`) it writes nothing: one log per run. `run_dir`
    may be a bucket URL (`robopolicy.paths.storage_path`); every file goes through its filesystem layer.
    """

    def __init__(
        self,
        run_dir: epath.Path,
        config: LogConfig,
        start: int,
        run_config: dict[str, Any] | None = None,
        primary: bool = True,
    ) -> None:
        self._jsonl = self._tb = self._wandb = None
        if not primary:
            return
        from tensorboardX import SummaryWriter

        if is_url(run_dir):
            _tensorboard_through_epath(str(run_dir).split("://")[0])
        truncate_log(run_dir / LOG_FILE, start)
        self._jsonl = (run_dir / LOG_FILE).open("a")
        # TensorBoard hides the crashed run's events from `purge_step` on (all of them for a new run).
        self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start + 1 if start else 0)
        if config.wandb_project:
            try:
                import wandb
            except ImportError as e:
                raise UserError(
                    f"--log.wandb-project {config.wandb_project}: wandb is not installed (pip install wandb)"
                ) from e
            self._wandb = wandb.init(
                project=config.wandb_project,
                dir=None if is_url(run_dir) else str(run_dir),  # wandb keeps its files locally
                config=run_config,
                id=wandb_run_id(run_dir),
                resume="allow",
            )

    def log(self, step: int, metrics: Mapping[str, Any], kind: str = "train") -> None:
        """One row at `step`; numbers (also nested ones) go to TensorBoard and wandb as `{kind}/{name}`."""
        if self._jsonl is None:
            return
        row = {"step": step, **({} if kind == "train" else {"kind": kind}), **metrics}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        scalars = {f"{kind}/{name}": value for name, value in _flat_numbers(metrics)}
        for tag, value in scalars.items():
            self._tb.add_scalar(tag, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class _EpathEventFile:
    """A TensorBoard event file written through `etils.epath`. Buckets have no append, so each flush
    rewrites the whole file, as tensorboardX's own bucket writers do (a run's scalars are small;
    tensorboardX flushes every two minutes and on close)."""

    def __init__(self, path: str) -> None:
        self.path = epath.Path(path)
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        self.path.write_bytes(bytes(self.data))

    def close(self) -> None:
        self.flush()


class _EpathEventFiles:
    """tensorboardX's writer factory for a URL scheme: event files through `etils.epath`."""

    def open(self, path: str) -> _EpathEventFile:
        return _EpathEventFile(path)

    def directory_check(self, path: str) -> None:
        epath.Path(path).mkdir(parents=True, exist_ok=True)


def _tensorboard_through_epath(scheme: str) -> None:
    """Make tensorboardX write `scheme://` event files through epath, like every other file of the
    run (its own gs:// writer would need google-cloud-storage, and it has none for other schemes)."""
    from tensorboardX import record_writer

    record_writer.register_writer_factory(scheme, _EpathEventFiles())


def wandb_run_id(run_dir: epath.Path) -> str:
    """The run folder's wandb run id, made (and kept in the folder) on first use."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    path.write_text(run_id + "\n")
    return run_id


def truncate_log(path: epath.Path, step: int) -> None:
    """Keep only the rows of steps up to `step`, the checkpoint a run resumes from (none for a new run).

    The rows past it are about to be redone; a half-written last line of a killed run goes too.
    """
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if step > 0 and _row_step(line) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept))


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")


def _flat_numbers(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            yield from _flat_numbers(value, f"{prefix}{name}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{name}", float(value)
