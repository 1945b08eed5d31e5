"""Time and success rate of `robopolicy quickstart` (the README's main job) on this machine.

Run: `python benchmarks/bench_quickstart.py [--out runs/bench_quickstart] [--seed 0]`.
Prints a markdown table row for benchmarks/RESULTS.md. Targets (issue #2): ≤ 15 min in total and
≥ 80 % success over the 50 held-out initial states on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.presets import QUICKSTART
from robopolicy.quickstart import run_quickstart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_quickstart")
    parser.add_argument("--seed", type=int, default=0, help="training seed (data collection is fixed)")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    base = QUICKSTART["default"]
    config = dataclasses.replace(base, out=args.out, train=dataclasses.replace(base.train, seed=args.seed))
    report = run_quickstart(config, progress=False)
    t = report["timings"]
    low, high = report["wilson95"]
    print("\n" + machine_line())
    print("| seed | total min | collect s | train s | eval s | success | 95% Wilson CI |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.seed} | {t['total_seconds'] / 60:.1f} | {t['collect_seconds']:.0f} | {t['train_seconds']:.0f} | "
        f"{t['eval_seconds']:.0f} | {report['successes']}/{report['episodes']} = {report['success_rate']:.0%} | "
        f"{low:.0%}–{high:.0%} |"
    )


if __name__ == "__main__":
    main()
