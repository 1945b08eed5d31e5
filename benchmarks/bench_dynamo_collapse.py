"""Is DynaMo's shrinking embedding spread a collapse? Ablations of the `tiny` preset, scale-free measures.

Run: `PYTHONPATH=. python benchmarks/bench_dynamo_collapse.py [--steps 600] [--plot PNG]`.
Pretrains the `tiny` preset on the 50 cube_on_plate demos of `bench_dynamo.py` (collected first if
missing) once per variant: losses on the small CNN's output (after its LayerNorm, the default) or on
its features before the norm, each with the paper's covariance weight 0.04 and without the
covariance term, and with the EMA target. A variant whose run folder already holds a finished
log with the same number of steps is read back, not rerun. For each, prints the raw embedding spread (`embedding_std`), the
scale-free spread of the training batch (`normalized_std`, √E·std of unit-normalised embeddings,
≈1 isotropic, 0 collapsed; `effective_rank` of the batch embeddings), the same two on the held-out
frames (views concatenated), and the held-out probe MSEs, at every probe step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.data.collect import collect
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.presets import COLLECT, PRETRAIN_DYNAMO
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
from robopolicy.train.train_logging import LogConfig

# name → (run folder, DynamoConfig overrides of the `tiny` preset)
PRE = {"dynamics_features": "before_output_norm"}
VARIANTS: dict[str, tuple[str, dict]] = {
    "output features, covariance 0.04 (default)": ("output_cov", {"dynamics_features": "output"}),
    "output features, no covariance term": (
        "output_nocov",
        {"dynamics_features": "output", "covariance_weight": 0.0},
    ),
    "before output norm, covariance 0.04": ("prenorm_cov", PRE),
    "before output norm, no covariance term": ("prenorm_nocov", {**PRE, "covariance_weight": 0.0}),
    "output features, EMA target": ("output_ema", {"dynamics_features": "output", "ema_target": True}),
}


def _log_rows(run: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r], [r for r in rows if "probe" in r]


def _plot(curves: dict[str, tuple[list[dict], list[dict]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("embedding_std", "raw embedding std (batch)"),
        ("normalized_std", "normalised std (batch)"),
        ("effective_rank", "effective rank (batch)"),
        ("state_linear", "held-out state probe MSE (linear)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for name, (steps, probes) in curves.items():
        for ax, (key, title) in zip(axes, panels, strict=True):
            if key == "state_linear":
                ax.plot(
                    [p["step"] for p in probes],
                    [p["probe"]["state"]["linear"] for p in probes],
                    "o-",
                    label=name,
                )
            else:
                ax.plot([r["step"] for r in steps], [r[key] for r in steps], label=name)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("pretraining step")
    axes[0].set_yscale("log")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="runs/dynamo_bench/dataset")
    parser.add_argument("--out", default="runs/bench_dynamo_collapse")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--probe-every", type=int, default=200)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--plot", default="")
    args = parser.parse_args()

    if not Path(args.dataset).exists():
        collect(dataclasses.replace(COLLECT["quickstart"], num_episodes=50, out=args.dataset), progress=False)
    episodes = load_episodes(args.dataset)
    base = PRETRAIN_DYNAMO["tiny"]
    curves: dict[str, tuple[list[dict], list[dict]]] = {}
    seconds: dict[str, float] = {}
    for name in args.variants:
        folder, overrides = VARIANTS[name]
        run = Path(args.out) / folder
        if (run / "train_log.jsonl").exists() and any(p["step"] == args.steps for p in _log_rows(run)[1]):
            curves[name] = _log_rows(run)  # finished earlier with these settings: reuse
            continue
        shutil.rmtree(run, ignore_errors=True)
        config = dataclasses.replace(
            base,
            dataset=args.dataset,
            out=str(run),
            steps=args.steps,
            checkpoint_every=args.steps,
            probe_every=args.probe_every,
            log=LogConfig(every=max(args.steps // 30, 1)),
            model=dataclasses.replace(base.model, **overrides),
        )
        t = time.perf_counter()
        pretrain_dynamo(config, episodes, progress=False)
        seconds[name] = time.perf_counter() - t
        curves[name] = _log_rows(run)
        print(f"{name}: {seconds[name]:.0f} s", flush=True)

    print("\n" + machine_line())
    print(f"tiny preset, batch {base.batch_size}, {args.steps} steps, 50 cube_on_plate demos (10 held out)")
    print(
        "| variant | step | dynamics loss | raw std | normalised std | eff. rank (batch) "
        "| held-out normalised std | held-out eff. rank | state linear | state kNN | action linear | action kNN |"
    )
    print("|---" * 12 + "|")
    for name, (steps, probes) in curves.items():
        by_step = {r["step"]: r for r in steps}
        for p in probes:
            r = by_step.get(p["step"])
            train_cols = (
                f"{r['dynamics']:.4f} | {r['embedding_std']:.3f} | {r['normalized_std']:.3f} | {r['effective_rank']:.1f}"
                if r
                else "– | – | – | –"
            )
            pr = p["probe"]
            print(
                f"| {name} | {p['step']} | {train_cols} | {pr['spread']['normalized_std']:.3f} | "
                f"{pr['spread']['effective_rank']:.1f} | {pr['state']['linear']:.3f} | {pr['state']['knn']:.3f} | "
                f"{pr['action']['linear']:.3f} | {pr['action']['knn']:.3f} |"
            )
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    if args.plot:
        _plot(curves, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
