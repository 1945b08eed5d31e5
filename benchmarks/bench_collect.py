"""Demonstrations per second of `robopolicy collect` with 1, 2, ... expert worker processes.

Run: `python benchmarks/bench_collect.py [--episodes 60] [--workers 1 2] [--image-size 64]`.
Collects the quickstart's kind of demos (cube_on_plate, agentview + wrist, noise 0.1) once per
worker count, in the same run, and prints a markdown table with the speed-up over the first count.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.data.collect import CollectConfig, collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--task", default="cube_on_plate")
    args = parser.parse_args()
    rows = []
    for workers in args.workers:
        out = Path(tempfile.mkdtemp(prefix="bench_collect_"))
        try:
            config = CollectConfig(
                task=args.task,
                num_episodes=args.episodes,
                image_size=args.image_size,
                noise_std=0.1,
                workers=workers,
                out=str(out),
            )
            result = collect(config, progress=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        rows.append((workers, result.seconds, result.episodes / result.seconds))
    print("\n" + machine_line())
    print(f"{args.episodes} demos of {args.task}, 2 cameras {args.image_size}×{args.image_size}")
    print("| workers | seconds | demos/s | speed-up |")
    print("|---|---|---|---|")
    for workers, seconds, rate in rows:
        print(f"| {workers} | {seconds:.1f} | {rate:.2f} | {rate / rows[0][2]:.2f}× |")


if __name__ == "__main__":
    main()
