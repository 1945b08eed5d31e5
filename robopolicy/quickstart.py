"""`robopolicy quickstart`: collect → RLDS dataset → train → evaluate, on one task, in one command."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from robopolicy.data.collect import CollectConfig, collect
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.eval.evaluate_checkpoint import evaluate_checkpoint, format_summary
from robopolicy.train.train_config import TrainConfig
from robopolicy.train_command import train_with_rollouts


@dataclass(frozen=True)
class QuickstartConfig:
    """The whole pipeline, one stage after the other.

    Attributes:
        out: root folder of every artifact: out/dataset, out/train, out/eval, out/quickstart.json. The
            dataset, run and output paths inside the nested configs are replaced by these.
        collect: demonstration collection.
        train: policy training.
        eval: evaluation on the task's fixed initial states.
    """

    out: str = "runs/quickstart"
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.train.dry_run:
            raise ValueError("QuickstartConfig: --train.dry-run is for `robopolicy train --dry-run`")


def run_quickstart(config: QuickstartConfig, progress: bool = True) -> dict[str, object]:
    """Run all stages; returns (and writes to out/quickstart.json) a summary with artifact paths."""
    root = Path(config.out)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    print(f"[1/3] collecting {config.collect.num_episodes} expert demos of '{config.collect.task}'")
    collected = collect(dataclasses.replace(config.collect, out=str(root / "dataset")), progress)
    timings["collect_seconds"] = time.perf_counter() - t0
    print(f"      {collected.episodes} demos, {collected.steps} steps → {collected.dataset_dir}")

    print(f"[2/3] training a flow-matching policy for {config.train.steps} steps")
    t1 = time.perf_counter()
    train_cfg = dataclasses.replace(config.train, dataset=str(collected.dataset_dir), out=str(root / "train"))
    trained = train_with_rollouts(train_cfg, progress=progress)
    timings["train_seconds"] = time.perf_counter() - t1
    print(f"      final loss {trained.final_loss:.4f}, {trained.steps_per_second:.1f} steps/s")

    print("[3/3] evaluating on held-out fixed initial states")
    t2 = time.perf_counter()
    eval_cfg = dataclasses.replace(
        config.eval, checkpoint=str(trained.checkpoint_dir), out=str(root / "eval")
    )
    summary, results_path = evaluate_checkpoint(eval_cfg, progress)
    timings["eval_seconds"] = time.perf_counter() - t2
    timings["total_seconds"] = time.perf_counter() - t0

    report = {
        "success_rate": summary.success_rate,
        "wilson95": summary.to_json()["wilson95"],
        "successes": summary.successes,
        "episodes": len(summary.episodes),
        "dataset": str(collected.dataset_dir),
        "checkpoint": str(trained.checkpoint_dir),
        "video": summary.video,
        "results": str(results_path),
        "timings": timings,
    }
    (root / "quickstart.json").write_text(json.dumps(report, indent=2))
    print()
    print(format_summary(summary))
    print(f"  dataset:    {collected.dataset_dir}")
    print(f"  checkpoint: {trained.checkpoint_dir}")
    print(f"  video:      {summary.video}")
    print(f"  results:    {results_path}")
    print(
        f"  time:       {timings['total_seconds'] / 60:.1f} min "
        f"(collect {timings['collect_seconds']:.0f}s, train {timings['train_seconds']:.0f}s, "
        f"eval {timings['eval_seconds']:.0f}s)"
    )
    return report
