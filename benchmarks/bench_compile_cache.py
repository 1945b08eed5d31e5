"""Start-up time with and without JAX's persistent compilation cache (issue #17).

Run: `python benchmarks/bench_compile_cache.py [--presets quickstart diffusion_policy] [--out DIR]`.

For each preset it times, as separate processes the way a user starts them:
- `robopolicy train --preset P --steps 1` (process start → first step done, plus the one checkpoint
  save): cache off, cold (empty cache folder), warm (the same folder again);
- `robopolicy eval` of that run on one episode capped at 2 steps, in process (an evaluation worker's
  start-up: policy load, compile, first actions): cache off, cold, warm.
The dataset is two scripted episodes of the quickstart task, collected once (images are resized to each
preset's size by the pipeline). Prints a markdown table for benchmarks/RESULTS.md. Goal: a warm start
≤ 10 s to the first step at the `quickstart` preset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

CLI = [sys.executable, "-m", "robopolicy.cli"]


def timed(args: list[str], cache: str) -> float:
    """Wall seconds of one robopolicy command in a fresh process with the given cache setting."""
    env = {**os.environ, "ROBOPOLICY_COMPILE_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    t = time.perf_counter()
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"`robopolicy {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["quickstart", "diffusion_policy"])
    parser.add_argument("--out", default="runs/bench_compile_cache")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    dataset = out / "data"
    collect = ["collect", "--task", "cube_on_plate", "--num-episodes", "2", "--image-size", "64"]
    subprocess.run([*CLI, *collect, "--out", str(dataset), "--workers", "1"], check=True, capture_output=True)
    rows = []
    for preset in args.presets:
        figures: dict[str, float] = {}
        for label in ("off", "cold", "warm"):
            cache = "off" if label == "off" else str(out / f"cache-{preset}")
            run = out / f"{preset}-{label}"
            train = ["train", "--preset", preset, "--steps", "1", "--batch-size", str(args.batch_size)]
            train += ["--checkpoint-every", "1", "--dataset", str(dataset), "--out", str(run)]
            figures[f"train {label}"] = timed(train, cache)
            evaluate = ["eval", "--checkpoint", str(run), "--init-states", "0:1", "--max-steps", "2"]
            evaluate += ["--backend", "local", "--workers", "0", "--video-episodes", "0"]
            evaluate += ["--out", str(out / f"{preset}-{label}-eval")]
            figures[f"eval {label}"] = timed(evaluate, cache)
        rows.append((preset, figures))
        print(preset, {k: round(v, 1) for k, v in figures.items()}, flush=True)
    print("\n" + machine_line())
    print("| preset | train: no cache | cold | warm | eval start: no cache | cold | warm |")
    print("|---|---|---|---|---|---|---|")
    for preset, f in rows:
        cells = [
            f"{f[f'{kind} {label}']:.1f} s" for kind in ("train", "eval") for label in ("off", "cold", "warm")
        ]
        print(f"| `{preset}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
