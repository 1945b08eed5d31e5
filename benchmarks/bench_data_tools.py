"""Dataset tooling throughput: `data info`, `data check` and `cache-embeddings` on a 50-demo task.

Collects `--demos` scripted demonstrations of `--task` (two cameras at `--image-size`) into a
temporary folder, reports its size on disk, times `data info` and `data check` over it (steps/s,
images decoded and validated), then writes a checkpoint of the default-preset policy (untrained
weights: encoding cost does not depend on their values) and times `cache-embeddings` (frames/s,
every camera counted) and the embedding dataset's size. Prints one Markdown table row per figure.

Run: `python benchmarks/bench_data_tools.py [--demos 50] [--image-size 128] [--batch-size 256]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from flax import nnx
from machine import machine_line

from robopolicy.data.collect import CollectConfig, collect
from robopolicy.data.dataset_check import check_dataset
from robopolicy.data.dataset_summary import summarize
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.cache_embeddings import CacheEmbeddingsConfig, cache_embeddings


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cube_on_plate")
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        collected = collect(
            CollectConfig(
                task=args.task, num_episodes=args.demos, image_size=args.image_size, out=str(root / "ds")
            ),
            progress=False,
        )
        steps = collected.steps
        rows = [
            (
                f"{args.demos}-demo dataset on disk (2 cameras {args.image_size}², zlib)",
                f"{size_mib(collected.dataset_dir):.1f} MiB, {steps} steps",
            )
        ]

        t0 = time.perf_counter()
        summary = summarize(str(root / "ds"))
        rows.append(
            (
                "`data info` (reads and decodes every step)",
                f"{steps / (time.perf_counter() - t0):.0f} steps/s",
            )
        )
        assert summary["steps"]["total"] == steps
        t0 = time.perf_counter()
        result = check_dataset(str(root / "ds"))
        rows.append(
            ("`data check` (every step validated)", f"{steps / (time.perf_counter() - t0):.0f} steps/s")
        )
        assert not result.problems, result.problems[:3]

        policy = PolicyConfig(image_size=args.image_size)
        params = nnx.state(Policy(policy, rngs=nnx.Rngs(0)), nnx.Param)
        manager = checkpoint.checkpoint_manager(root / "run" / "checkpoints")
        checkpoint.save(manager, 1, {"ema_params": params}, {"policy_config": dataclasses.asdict(policy)})
        manager.wait_until_finished()
        manager.close()
        t0 = time.perf_counter()
        cached = cache_embeddings(
            CacheEmbeddingsConfig(
                encoder=str(root / "run"),
                dataset=str(root / "ds"),
                out=str(root / "emb"),
                batch_size=args.batch_size,
            ),
            progress=False,
        )
        total = time.perf_counter() - t0
        rows.append(
            (
                f"`cache-embeddings`, default policy encoder ({policy.encoder_channels}, "
                f"{policy.pooling}, D={policy.feature_dim}), batch {args.batch_size}",
                f"{cached.frames / cached.seconds:.0f} frames/s while encoding "
                f"({cached.frames} frames; {total:.1f} s in all, compile and dataset build included)",
            )
        )
        rows.append(("embedding cache on disk", f"{size_mib(cached.dataset_dir):.2f} MiB"))

    print(f"Machine: {machine_line()}\n")
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
