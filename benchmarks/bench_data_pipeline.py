"""Data-pipeline throughput against the train step's consumption, and the size of a 50-demo dataset.

Run: `python benchmarks/bench_data_pipeline.py [--out runs/bench_data] [--episodes 50]`.

1. Collects two 50-demo `cube_on_plate` datasets with `robopolicy collect`: one at the collect
   defaults (two 128×128 cameras) for the size on disk, one at the quickstart preset (two 64×64
   cameras) that the quickstart policy trains on.
2. For the `quickstart` train preset (batch 32, 64×64, To=1) on the 64×64 dataset and the `default`
   one (batch 64, 128×128, To=2) on the 128×128 dataset, builds the training pipeline exactly as
   `robopolicy train` does (same windows, normalization, vocabulary, shuffling) and times
   `next(iterator)` alone, in the loop (0 read threads) and with the preset's read threads.
3. Times that preset's jitted train step on a fixed batch (consumption), then the step fed by the
   iterator (the training loop as it runs).

Prints a markdown section for benchmarks/RESULTS.md. Target (#4): pipeline ≥ 5× the step's rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
from flax import nnx
from machine import machine_line

from robopolicy.data.pipeline import batch_iterator
from robopolicy.data.rlds_reader import find_dataset_dir
from robopolicy.models.policy import Policy
from robopolicy.presets import TRAIN
from robopolicy.train.loop import init_state, make_step
from robopolicy.train.optimizer import make_optimizer
from robopolicy.train.trainer import policy_loss
from robopolicy.train.training_data import prepare_training_data


def _collect(out: Path, episodes: int, preset: str) -> Path:
    if not out.exists():
        cmd = [sys.executable, "-m", "robopolicy.cli", "collect", "--preset", preset]
        cmd += ["--task", "cube_on_plate", "--num-episodes", str(episodes), "--out", str(out)]
        t0 = time.perf_counter()
        with open(out.parent / f"{out.name}.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        print(f"collected {out} in {time.perf_counter() - t0:.0f}s", flush=True)
    return find_dataset_dir(out)


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _rate(fn: object, seconds: float, min_calls: int = 5) -> float:
    """Calls per second of fn() over at least `seconds` and `min_calls` calls, after one warm-up call."""
    fn()  # type: ignore[operator]
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        fn()  # type: ignore[operator]
        calls += 1
    return calls / (time.perf_counter() - t0)


def _measure(preset: str, dataset: Path, root: Path, seconds: float) -> list[str]:
    """Markdown lines: the pipeline and the train step of `preset`'s train config on `dataset`."""
    config = dataclasses.replace(TRAIN[preset], dataset=str(dataset), out=str(root / "unused"))
    t0 = time.perf_counter()
    data = prepare_training_data(config)
    prep_s = time.perf_counter() - t0
    bs = config.batch_size

    loader_rates = {}
    for threads in sorted({0, config.data.read_threads}):
        it = batch_iterator(data.batches, threads, config.data.prefetch)
        loader_rates[threads] = _rate(lambda it=it: next(it), seconds) * bs

    model = Policy(data.policy_config, rngs=nnx.Rngs(0))
    graphdef = nnx.graphdef(model)
    tx = make_optimizer(config.optimizer, config.steps)
    state = {"s": init_state(nnx.state(model, nnx.Param), tx, 0, ema=True)}
    del model
    step_fn = make_step(policy_loss(graphdef, config.color_jitter), tx, config.ema)

    def to_device(window: dict) -> dict:
        return {"images": window["images"], "state": window["state"], "action": window["action"]}

    fixed = jax.device_put(to_device(next(batch_iterator(data.batches, 0))))

    def step_fixed() -> None:
        state["s"], metrics = step_fn(state["s"], fixed)
        jax.block_until_ready(metrics["loss"])

    step_rate = _rate(step_fixed, seconds) * bs
    it = batch_iterator(data.batches, config.data.read_threads, config.data.prefetch)

    def step_fed() -> None:
        state["s"], metrics = step_fn(state["s"], to_device(next(it)))
        jax.block_until_ready(metrics["loss"])

    fed_rate = _rate(step_fed, seconds) * bs

    images = data.sources[0].get_batch([0])["images"]
    shapes = ", ".join(f"{cam} {tuple(v.shape[1:])}" for cam, v in images.items())
    lines = [
        f"\n`{preset}` train preset: batch {bs}, To={data.policy_config.obs_horizon}, "
        f"H={data.policy_config.action_horizon}, images {shapes} uint8; {data.num_episodes} episodes, "
        f"{len(data.sources[0])} windows; loading + stats + windowing {prep_s:.1f}s.\n",
        "| what | samples/s | × train step |",
        "|---|---|---|",
    ]
    for threads, rate in loader_rates.items():
        lines.append(f"| pipeline alone, {threads} read threads | {rate:,.0f} | {rate / step_rate:.1f}× |")
    lines.append(f"| jitted train step on a fixed batch (consumption) | {step_rate:,.0f} | 1.0× |")
    lines.append(
        f"| train step fed by the pipeline ({config.data.read_threads} read threads) | {fed_rate:,.0f} | "
        f"{fed_rate / step_rate:.2f}× |"
    )
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_data")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="time per measurement")
    args = parser.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)

    default_dir = _collect(root / "default_128px", args.episodes, "default")
    quick_dir = _collect(root / "quickstart_64px", args.episodes, "quickstart")
    lines = ["\n## Data pipeline throughput (#4)\n", machine_line()]
    lines += _measure("quickstart", quick_dir, root, args.seconds)
    lines += _measure("default", default_dir, root, args.seconds)
    lines += [
        f"\n| {args.episodes}-demo cube_on_plate dataset (RLDS, array_record, zlib frames) | size on disk | per episode |",
        "|---|---|---|",
    ]
    for name, path in (
        ("collect default, 2 × 128×128", default_dir),
        ("quickstart preset, 2 × 64×64", quick_dir),
    ):
        size = _size_mb(path)
        lines.append(f"| {name} | {size:.1f} MB | {size / args.episodes:.2f} MB |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
