"""Training from a LIBERO-sized dataset with bounded host memory: peak RSS against dataset size, and
the loader's rate against the train step's.

Run: `python benchmarks/bench_data_scale.py [--out runs/bench_data_scale] [--steps 50000]
[--scales 0.5 1 2] [--train-steps 200] [--batch-size 8]`.

1. Writes synthetic datasets in the LIBERO RLDS layout (OpenVLA's conversions: `observation/image`
   and `observation/wrist_image` JPEG 256×256, `observation/state` float32 [8], `action` float32
   [7], `language_instruction`), `scale × steps` steps each, in episodes of ~125 steps. Frames are
   not constant: each episode pans over its own random texture and a marker moves every step.
2. Trains the `diffusion_policy` preset resized to 128 px (`--policy.image-size 128`) for
   `--train-steps` steps on each, through `robopolicy train` in a child process, and records the
   child's peak RSS (`getrusage(RUSAGE_CHILDREN)`), its steady step rate and wall time.
3. Times the training pipeline alone on the 1× dataset, built exactly as `robopolicy train` builds
   it (metadata pass, statistics, windows, resize in the read threads): samples/s against the train
   step's consumption (batch × steady steps/s).

Prints a markdown section for benchmarks/RESULTS.md. Targets (#14): peak RSS ≤ 4 GB and flat in the
dataset's size; loader ≥ 5× the step's consumption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.data.episode import Episode
from robopolicy.data.pipeline import batch_iterator
from robopolicy.data.rlds_writer import build_rlds_dataset
from robopolicy.presets import TRAIN
from robopolicy.train.training_data import prepare_training_data

EPISODE_STEPS = 125  # LIBERO's spatial suite averages ~120 steps per demonstration (52,970 / 432)
INSTRUCTIONS = (
    "pick up the black bowl between the plate and the ramekin and place it on the plate",
    "pick up the black bowl next to the cookie box and place it on the plate",
    "pick up the black bowl on the wooden cabinet and place it on the plate",
)
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def synthetic_episode(episode_id: int, size: int = 256) -> Episode:
    """One LIBERO-shaped episode: two cameras panning over random textures, a moving marker."""
    rng = np.random.default_rng(episode_id)
    n = EPISODE_STEPS + int(rng.integers(-10, 11))
    frames = {}
    for cam in ("image", "wrist_image"):
        coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        texture = np.asarray(Image.fromarray(coarse).resize((2 * size, 2 * size), Image.Resampling.BILINEAR))
        start, end = rng.integers(0, size, 2), rng.integers(0, size, 2)
        path = np.linspace(start, end, n).astype(int)
        out = np.empty((n, size, size, 3), np.uint8)
        for t, (y, x) in enumerate(path):
            out[t] = texture[y : y + size, x : x + size]
            my, mx = (t * 7) % (size - 16), (t * 13) % (size - 16)
            out[t, my : my + 16, mx : mx + 16] = (255, 255, 0)
        frames[cam] = out
    state = np.cumsum(rng.normal(0, 0.01, (n, 8)), axis=0).astype(np.float32)
    action = np.concatenate(
        [rng.normal(0, 0.3, (n, 6)), np.where(np.arange(n)[:, None] < n // 2, -1.0, 1.0)], axis=1
    ).astype(np.float32)
    return Episode(
        frames=frames,
        state=state,
        action=action,
        reward=(np.arange(n) == n - 1).astype(np.float32),
        task=f"task_{episode_id % len(INSTRUCTIONS)}",
        instruction=INSTRUCTIONS[episode_id % len(INSTRUCTIONS)],
        episode_id=episode_id,
    )


def write_dataset(out: Path, num_steps: int) -> tuple[Path, int, float]:
    """(dataset folder, steps written, seconds); reuses a finished dataset."""
    done = out / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        return out, info["steps"], info["seconds"]
    t0 = time.perf_counter()
    written = 0

    def episodes() -> Iterator[Episode]:
        nonlocal written
        episode_id = 0
        while written < num_steps:
            episode = synthetic_episode(episode_id)
            written += len(episode)
            episode_id += 1
            yield episode

    build_rlds_dataset(
        episodes(),
        out,
        config_name="libero_layout_256px",
        cameras=("image", "wrist_image"),
        image_shape=(256, 256),
        state_dim=8,
        action_dim=7,
        image_encoding="jpeg",
    )
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({"steps": written, "seconds": seconds}))
    return out, written, seconds


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def train_run(dataset: Path, out: Path, steps: int, batch_size: int) -> dict[str, float]:
    """Train in a child process; its peak RSS, steady steps/s (median after the first 10 steps), wall."""
    cmd = [
        sys.executable,
        "-c",
        RSS_WRAPPER,
        str(Path(sys.executable).parent / "robopolicy"),
        "train",
        "--preset",
        "diffusion_policy",
        "--dataset",
        str(dataset),
        "--policy.image-size",
        "128",
        "--steps",
        str(steps),
        "--batch-size",
        str(batch_size),
        "--checkpoint-every",
        str(steps),
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"training on {dataset} failed:\n{proc.stderr[-3000:]}")
    peak_kb = int(
        next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    )
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in rows if "steps_per_s" in r and r["step"] > 10]
    return {"peak_rss_gb": peak_kb / 2**20, "steps_per_s": statistics.median(rates), "wall_s": wall}


def loader_rate(dataset: Path, batch_size: int, batches: int) -> dict[str, float]:
    """Samples/s of the training pipeline alone (the preset's read threads), and its setup time."""
    preset = TRAIN["diffusion_policy"]
    config = dataclasses.replace(
        preset,
        dataset=str(dataset),
        batch_size=batch_size,
        policy=dataclasses.replace(preset.policy, image_size=128),
    )
    t0 = time.perf_counter()
    data = prepare_training_data(config)
    setup = time.perf_counter() - t0
    iterator = batch_iterator(data.batches, config.data.read_threads, config.data.prefetch)
    for _ in range(3):  # threads started, first records read
        batch = next(iterator)
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    seconds = time.perf_counter() - t0
    shape = batch["images"]["agentview"].shape
    return {"samples_per_s": batches * batch_size / seconds, "setup_s": setup, "image_batch_shape": shape}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench_data_scale")
    parser.add_argument("--steps", type=int, default=50_000, help="steps of the 1× dataset")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--loader-batches", type=int, default=40)
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for scale in args.scales:
        label = f"{scale:g}x"
        dataset, steps, gen_s = write_dataset(out / f"data_{label}", round(scale * args.steps))
        print(
            f"[{label}] dataset: {steps} steps, {disk_bytes(dataset) / 2**30:.2f} GiB, written in {gen_s:.0f} s"
        )
        run_dir = out / f"train_{label}"
        measured = run_dir / "bench_result.json"  # a finished run of these settings is not repeated
        settings = {"train_steps": args.train_steps, "batch_size": args.batch_size}
        if measured.exists() and json.loads(measured.read_text())["settings"] == settings:
            result = json.loads(measured.read_text())["result"]
        else:
            if run_dir.exists():
                subprocess.run(["rm", "-rf", str(run_dir)], check=True)
            result = train_run(dataset, run_dir, args.train_steps, args.batch_size)
            measured.write_text(json.dumps({"settings": settings, "result": result}))
        print(f"[{label}] train: {result}")
        rows.append({"scale": label, "steps": steps, "gib": disk_bytes(dataset) / 2**30, **result})
    one_x = next((r for r in rows if r["scale"] == "1x"), rows[0])
    loader = loader_rate(out / f"data_{one_x['scale']}", args.batch_size, args.loader_batches)
    consumption = one_x["steps_per_s"] * args.batch_size
    print(f"loader: {loader}")

    print(f"\n## Training from a LIBERO-sized dataset with bounded memory (#14)\n\n{machine_line()}\n")
    print(
        f"`python benchmarks/bench_data_scale.py --steps {args.steps} --train-steps {args.train_steps} "
        f"--batch-size {args.batch_size}`: `diffusion_policy` preset at 128 px (resized from 256 px "
        f"JPEG, two cameras), {args.train_steps} steps, batch {args.batch_size}.\n"
    )
    print("| dataset | steps | on disk (GiB) | peak RSS of `robopolicy train` (GiB) | steps/s | wall (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scale']} | {r['steps']} | {r['gib']:.2f} | {r['peak_rss_gb']:.2f} | "
            f"{r['steps_per_s']:.2f} | {r['wall_s']:.0f} |"
        )
    ratio = loader["samples_per_s"] / consumption
    print(
        f"\nLoader alone on the {one_x['scale']} set ({args.loader_batches} batches of {args.batch_size}, "
        f"1 read thread, frames decoded and resized to {loader['image_batch_shape'][-3:-1]}): "
        f"**{loader['samples_per_s']:.1f} samples/s** against the train step's "
        f"{consumption:.2f} samples/s: **{ratio:.1f}×** (setup, the metadata pass and statistics: "
        f"{loader['setup_s']:.1f} s)."
    )


if __name__ == "__main__":
    main()
