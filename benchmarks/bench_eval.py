"""Evaluation throughput: episodes per hour, sequential vs a pool of 2 workers, measured in one run.

Policy: the quickstart policy architecture (64×64 agentview + wrist, CNN + flow-matching head),
trained briefly (`--train-steps`, default 300) on `--demos` scripted demonstrations of
cube_on_plate, so that the figures are about evaluation machinery, not policy quality. Episodes run
to success or the task's 150-step cap. Both passes run the same episodes (initial states 0..N−1,
seed 0) into separate fresh databases; the pool pass includes spawning the workers, which load the
policy and compile it once each, as the sequential pass does in its own process. The time split (policy inference / physics / rendering) is summed
over the stored episodes of the sequential pass.

Run: `python benchmarks/bench_eval.py [--episodes 12] [--out runs/bench_eval]`; prints a JSON line and
a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.results_store import ResultsStore
from robopolicy.eval.sweep import run_sweep
from robopolicy.eval.sweep_config import SweepConfig


def ensure_policy(out: Path, demos: int, steps: int) -> Path:
    """A quickstart-architecture checkpoint under `out/train` (reused when present)."""
    from robopolicy.data.collect import collect
    from robopolicy.presets import COLLECT, TRAIN
    from robopolicy.train.trainer import train

    run = out / "train"
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
        return run
    dataset = out / "dataset"
    collect(dataclasses.replace(COLLECT["quickstart"], num_episodes=demos, out=str(dataset)))
    config = dataclasses.replace(
        TRAIN["quickstart"], steps=steps, checkpoint_every=steps, dataset=str(dataset), out=str(run)
    )
    train(config, progress=False)
    return run


def timed_pass(
    run: Path, db: Path, episodes: int, workers: int, single_threaded: bool = False
) -> tuple[float, list[dict]]:
    db.unlink(missing_ok=True)
    config = SweepConfig(
        db=str(db),
        checkpoints=(str(run),),
        tasks=("cube_on_plate",),
        init_states=f"0:{episodes}",
        workers=workers,
        settings=(ExecutionSettings(),),
        single_threaded_workers=single_threaded,
    )
    t0 = time.perf_counter()
    run_sweep(config, lambda msg: None)
    wall = time.perf_counter() - t0
    with ResultsStore(db) as store:
        return wall, store.episodes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_eval")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = ensure_policy(out, args.demos, args.train_steps)
    shutil.rmtree(out / "videos", ignore_errors=True)
    # The sequential pass loads and compiles the policy in this process, as the pool's workers do in
    # theirs: nothing is cached from training or earlier passes.
    import jax

    jax.clear_caches()
    seq_wall, seq = timed_pass(run, out / "sequential.db", args.episodes, 0)
    pool_wall, pool = timed_pass(run, out / "pool2.db", args.episodes, 2)
    pool1_wall, _ = timed_pass(run, out / "pool2_single_thread.db", args.episodes, 2, single_threaded=True)
    steps = sum(e["steps"] for e in seq)
    parts = {k: sum(e[f"{k}_seconds"] for e in seq) for k in ("policy", "physics", "render")}
    episode_wall = sum(e["wall_seconds"] for e in seq)
    result = {
        "machine": machine_line(),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
        "episodes": args.episodes,
        "steps_sequential": steps,
        "successes_sequential": sum(e["success"] for e in seq),
        "successes_pool": sum(e["success"] for e in pool),
        "sequential_wall_s": round(seq_wall, 1),
        "pool2_wall_s": round(pool_wall, 1),
        "sequential_episodes_per_hour": round(args.episodes / seq_wall * 3600),
        "pool2_episodes_per_hour": round(args.episodes / pool_wall * 3600),
        "pool2_single_thread_wall_s": round(pool1_wall, 1),
        "pool2_single_thread_episodes_per_hour": round(args.episodes / pool1_wall * 3600),
        "share_of_episode_time": {k: round(v / episode_wall, 3) for k, v in parts.items()},
        "other_share": round(1 - sum(parts.values()) / episode_wall, 3),
    }
    print(json.dumps(result))
    share = result["share_of_episode_time"]
    print("\n" + result["machine"] + f" · load average {result['load_average_1min_after']} after the run")
    print(
        "| episodes | env steps | sequential | 2 workers | 2 single-threaded workers | policy | physics | "
        "render | other |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.episodes} | {steps} | {seq_wall:.0f} s = {result['sequential_episodes_per_hour']} ep/h | "
        f"{pool_wall:.0f} s = {result['pool2_episodes_per_hour']} ep/h ({seq_wall / pool_wall:.2f}×) | "
        f"{pool1_wall:.0f} s = {result['pool2_single_thread_episodes_per_hour']} ep/h ({seq_wall / pool1_wall:.2f}×) | "
        f"{share['policy']:.0%} | {share['physics']:.0%} | {share['render']:.0%} | {result['other_share']:.0%} |"
    )


if __name__ == "__main__":
    main()
