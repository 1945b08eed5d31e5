"""Where training metrics go: a JSON-lines log, TensorBoard event files and, optionally, wandb.

All three live under the run folder (wandb also online, if configured): `train_log.jsonl` (one
object per read-out), `tensorboard/` (scalars `train/loss`, `train/grad_norm`, `train/lr`,
`train/steps_per_s`, and whatever evaluation hooks return under `eval/`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError


class TrainLogger:
    """Writes scalar metrics of a run; `close()` flushes everything."""

    def __init__(self, run_dir: Path, wandb_project: str = "", config: dict[str, Any] | None = None) -> None:
        from tensorboardX import SummaryWriter

        self._jsonl = (run_dir / "train_log.jsonl").open("a")
        self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        self._wandb = None
        if wandb_project:
            try:
                import wandb
            except ImportError as e:
                raise UserError(
                    f"--wandb-project {wandb_project}: wandb is not installed (pip install wandb)"
                ) from e
            self._wandb = wandb.init(project=wandb_project, dir=str(run_dir), config=config, resume="allow")

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        """Scalars at `step`; `loss` and the rest go to TensorBoard as `{prefix}/{name}`."""
        self._jsonl.write(
            json.dumps({"step": step, **({} if prefix == "train" else {"kind": prefix}), **metrics}) + "\n"
        )
        self._jsonl.flush()
        for name, value in metrics.items():
            self._tb.add_scalar(f"{prefix}/{name}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{prefix}/{k}": v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
