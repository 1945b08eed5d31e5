"""Evaluation throughput in episodes per hour, measured in one run on the same episodes: sequential
(one process, one env), the local pool of 2 workers, and the vectorized backend (one policy process,
batched inference) with 2 and 4 env workers.

Policy: by default the quickstart policy architecture (64×64 agentview + wrist, CNN + flow-matching
head), trained briefly (`--train-steps`, default 300) on `--demos` scripted demonstrations of
cube_on_plate, so that the figures are about evaluation machinery, not policy quality; `--run` uses
an existing training run instead, and `--suite` evaluates every task of a suite (initial states
0..`--episodes`−1 of each task). Episodes run to success or the task's cap. Every pass runs the same
episodes (seed 0) into its own fresh database and includes its own start-up: the pool's workers and
the vector env's workers load what they need, as the sequential pass loads and compiles the policy.
Time split: for the sequential pass, policy inference / physics / rendering summed over its stored
episodes, as a share of episode time; for the vectorized passes, the share of wall time spent in the
batched inference calls (the rest is waiting for the env workers, whose physics and rendering
overlap).

Run: `python benchmarks/bench_eval.py [--episodes 12] [--out runs/bench_eval] [--run RUN --suite S]`;
prints a JSON line and a markdown table for benchmarks/RESULTS.md.
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
    run: Path, db: Path, episodes: int, suite: str, backend: str, workers: int = 0, num_envs: int = 2
) -> tuple[float, list[dict]]:
    db.unlink(missing_ok=True)
    config = SweepConfig(
        db=str(db),
        checkpoints=(str(run),),
        suites=(suite,) if suite else (),
        tasks=() if suite else ("cube_on_plate",),
        init_states=f"0:{episodes}",
        workers=workers,
        backend=backend,  # type: ignore[arg-type]
        num_envs=num_envs,
        settings=(ExecutionSettings(),),
    )
    t0 = time.perf_counter()
    run_sweep(config, lambda msg: None)
    wall = time.perf_counter() - t0
    with ResultsStore(db) as store:
        return wall, store.episodes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_eval")
    parser.add_argument("--episodes", type=int, default=12, help="initial states per task")
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--run", default="", help="an existing training run to evaluate")
    parser.add_argument("--suite", default="", help="evaluate every task of this suite")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(args.run) if args.run else ensure_policy(out, args.demos, args.train_steps)
    shutil.rmtree(out / "videos", ignore_errors=True)
    # The sequential pass loads and compiles the policy in this process, as the pool's workers do in
    # theirs: nothing is cached from training or earlier passes.
    import jax

    passes = {
        "sequential": ("local", 0, 2),
        "pool2": ("local", 2, 2),
        "vector2": ("vector", 0, 2),
        "vector4": ("vector", 0, 4),
    }
    walls: dict[str, float] = {}
    stored: dict[str, list[dict]] = {}
    for name, (backend, workers, num_envs) in passes.items():
        jax.clear_caches()
        walls[name], stored[name] = timed_pass(
            run, out / f"{name}.db", args.episodes, args.suite, backend, workers, num_envs
        )
    seq = stored["sequential"]
    n = len(seq)
    steps = sum(e["steps"] for e in seq)
    parts = {k: sum(e[f"{k}_seconds"] for e in seq) for k in ("policy", "physics", "render")}
    episode_wall = sum(e["wall_seconds"] for e in seq)
    outcomes = {
        name: sorted((e["task"], e["init_state_id"], e["success"], e["steps"]) for e in eps)
        for name, eps in stored.items()
    }
    result = {
        "machine": machine_line(),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
        "policy": str(run),
        "suite": args.suite or "cube_on_plate",
        "episodes": n,
        "steps_sequential": steps,
        "successes": {name: sum(e["success"] for e in eps) for name, eps in stored.items()},
        "same_outcomes_as_sequential": {name: o == outcomes["sequential"] for name, o in outcomes.items()},
        "wall_s": {name: round(w, 1) for name, w in walls.items()},
        "episodes_per_hour": {name: round(n / w * 3600) for name, w in walls.items()},
        "speedup_vs_sequential": {name: round(walls["sequential"] / w, 2) for name, w in walls.items()},
        "sequential_share_of_episode_time": {k: round(v / episode_wall, 3) for k, v in parts.items()},
        "sequential_other_share": round(1 - sum(parts.values()) / episode_wall, 3),
        "policy_share_of_wall": {
            name: round(sum(e["policy_seconds"] for e in eps) / walls[name], 3)
            for name, eps in stored.items()
        },
    }
    print(json.dumps(result))
    share = result["sequential_share_of_episode_time"]
    eph, speed, pshare = (
        result["episodes_per_hour"],
        result["speedup_vs_sequential"],
        result["policy_share_of_wall"],
    )
    print("\n" + result["machine"] + f" · load average {result['load_average_1min_after']} after the run")
    print(f"{result['suite']}, {n} episodes, {steps} env steps (sequential)\n")
    print("| pass | wall | episodes/hour | vs sequential | policy share of wall | same outcomes |")
    print("|---|---|---|---|---|---|")
    for name in passes:
        print(
            f"| {name} | {walls[name]:.0f} s | {eph[name]} | {speed[name]:.2f}× | {pshare[name]:.0%} | "
            f"{result['same_outcomes_as_sequential'][name]} |"
        )
    print(
        f"\nsequential episode time: policy {share['policy']:.0%}, physics {share['physics']:.0%}, "
        f"render {share['render']:.0%}, other {result['sequential_other_share']:.0%}"
    )


if __name__ == "__main__":
    main()
