"""Training throughput and chunk latency side by side with PyTorch LeRobot's Diffusion Policy (#21).

Run: `python benchmarks/bench_vs_lerobot.py [--parts train,latency,encoder] [--batches 8,64]`.
Prints markdown tables for benchmarks/RESULTS.md, with the machine, the date and both versions.

LeRobot runs in a throwaway venv of its own (`--lerobot-venv`, made on first use with pip from the
package registry: LeRobot 0.4.4, the newest release for Python 3.11, without its hardware and
dataset extras' torch pins, and whatever torch + torchvision pip picks, which is checked to run on the
CPU), in a subprocess (benchmarks/lerobot_worker.py) that answers JSON requests on stdin/stdout.
torch never enters our venv. Each measurement round runs our step, then theirs, so both see the same
machine load; figures are medians over the rounds.

Both sides at matched size and inputs:
- ours: the `diffusion_policy` preset (ResNet-18 GroupNorm + spatial softmax per camera, two 84²
  cameras, To=2, H=16, transformer denoiser, DDPM loss; ±4 px shift augmentation), a jitted
  loss + grad + AdamW step with donated state (benchmarks/bench_models.py's);
- LeRobot: DiffusionPolicy with U-Net down_dims 128/256/512 (its default, 512/1024/2048, is 267 M
  parameters), ResNet-18 GroupNorm + spatial softmax shared by the cameras, the same shapes, DDPM loss,
  its own Adam preset with gradient clipping; `--lerobot-crop 76` adds its random crop 76 of 84 (the
  Diffusion Policy recipe; 0.82× the pixels), off by default so both encoders see 84².

Parts:
- train: samples/s at each `--batches` size, and the growth from the smallest to the largest batch.
- latency: ms per action chunk at batch 1: DDIM 10 (both) and flow matching Euler 10 (ours).
- encoder: the image encoder alone, forward + backward (sum of squared features) on N 84² frames
  per call, ours jitted vs LeRobot's DiffusionRgbEncoder: frames/s per `--encoder-frames` size.
  At batch B, each of our two encoders sees 2·B frames and LeRobot's shared one 4·B.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

LEROBOT_VERSION = "0.4.4"
# LeRobot 0.4.4's requirements less torch, torchvision and torchcodec (pinned below 2.11 / 0.26, which
# pip would fetch as multi-GB GPU builds; any recent torch runs its Diffusion Policy unchanged).
LEROBOT_DEPS = (
    "datasets>=4.0.0,<5.0.0",
    "diffusers>=0.27.2,<0.36.0",
    "huggingface-hub>=0.34.2,<0.36.0",
    "accelerate>=1.10.0,<2.0.0",
    "setuptools>=71.0.0,<81.0.0",
    "einops>=0.8.0,<0.9.0",
    "opencv-python-headless>=4.9.0,<4.13.0",
    "av>=15.0.0,<16.0.0",
    "jsonlines>=4.0.0,<5.0.0",
    "packaging>=24.2,<26.0",
    "pynput>=1.7.7,<1.9.0",
    "pyserial>=3.5,<4.0",
    "wandb>=0.24.0,<0.25.0",
    "draccus==0.10.0",
    "gymnasium>=1.1.1,<2.0.0",
    "rerun-sdk>=0.24.0,<0.27.0",
    "deepdiff>=7.0.1,<9.0.0",
    "imageio>=2.34.0,<3.0.0",
    "termcolor>=2.4.0,<4.0.0",
)
UNET_DOWN_DIMS = (128, 256, 512)  # LeRobot's U-Net sized to ~29.5 M parameters, near our preset's
WORKER = Path(__file__).parent / "lerobot_worker.py"


# --- figures and tables (pure, tested in tests/test_bench_vs_lerobot.py) -------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the comparison: a figure for each side (None where a side has no such figure).

    `higher_is_better` says which way the ratio reads: throughput is ours ÷ theirs, time theirs ÷ ours,
    so a ratio above 1 always means robopolicy is ahead.
    """

    name: str
    ours: float | None
    theirs: float | None
    higher_is_better: bool = True
    digits: int = 1

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.theirs is None or min(self.ours, self.theirs) <= 0:
            return None
        return self.ours / self.theirs if self.higher_is_better else self.theirs / self.ours


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown_table(title: str, rows: list[Row]) -> str:
    """A markdown table: figure, robopolicy, LeRobot, and the ratio (> 1×: robopolicy ahead)."""
    lines = [f"| {title} | robopolicy | LeRobot | ratio (> 1×: ours ahead) |", "|---|---|---|---|"]
    for r in rows:
        ratio = "–" if r.ratio is None else f"{r.ratio:.2f}×"
        lines.append(f"| {r.name} | {_cell(r.ours, r.digits)} | {_cell(r.theirs, r.digits)} | {ratio} |")
    return "\n".join(lines)


# Per-call timings of one side: {"seconds": wall s, "cpu_seconds": process CPU s}, one entry per call.
Timing = dict[str, list[float]]


def per_second(count: int, seconds: list[float]) -> float:
    """Items per second from the median of per-call times (robust to one stalled call)."""
    return count / statistics.median(seconds)


def cpu_ms_per_item(count: int, timing: Timing) -> float:
    """Median process CPU milliseconds per item: the work done, whatever else the machine runs."""
    return 1e3 * statistics.median(timing["cpu_seconds"]) / count


def throughput_rows(
    what: str, sizes: list[int], ours: dict[int, Timing], theirs: dict[int, Timing]
) -> list[Row]:
    """`what`/s per size (wall), its growth from the smallest size to the largest, and CPU ms per item."""
    rows = [
        Row(f"{what}/s, {n}", per_second(n, ours[n]["seconds"]), per_second(n, theirs[n]["seconds"]))
        for n in sizes
    ]
    if len(sizes) > 1:
        lo, hi = rows[0], rows[-1]
        assert lo.ours and lo.theirs and hi.ours and hi.theirs
        rows.append(
            Row(f"growth {sizes[0]} → {sizes[-1]}", hi.ours / lo.ours, hi.theirs / lo.theirs, digits=2)
        )
    rows += [
        Row(
            f"CPU ms per {what}, {n}",
            cpu_ms_per_item(n, ours[n]),
            cpu_ms_per_item(n, theirs[n]),
            higher_is_better=False,
        )
        for n in sizes
    ]
    return rows


# --- LeRobot's side -----------------------------------------------------------------------------------


def ensure_lerobot_venv(venv: Path, torch_spec: str) -> Path:
    """The venv's python, after making the venv with LeRobot and a CPU-usable torch if it is missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making {venv} (LeRobot {LEROBOT_VERSION}, torch) with pip …", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *torch_spec.split()], check=True)
        subprocess.run([*pip, "--no-deps", f"lerobot=={LEROBOT_VERSION}"], check=True)
        subprocess.run([*pip, *LEROBOT_DEPS], check=True)
    probe = "import torch; torch.ones(2, 2, device='cpu').sum().item(); import lerobot.policies.diffusion"
    subprocess.run([str(python), "-c", probe], check=True, capture_output=True)
    return python


class LeRobotWorker:
    """benchmarks/lerobot_worker.py in the LeRobot venv; one JSON request → one JSON answer."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def request(self, op: str, **fields: object) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"LeRobot worker died during {op!r} (its stderr is above)")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.request_quit()
        self.proc.wait(timeout=60)

    def request_quit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.proc.stdin.close()


# --- our side ------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], object], calls: int) -> Timing:
    import jax

    timing: Timing = {"seconds": [], "cpu_seconds": []}
    for _ in range(calls):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        timing["seconds"].append(time.perf_counter() - wall)
        timing["cpu_seconds"].append(time.process_time() - cpu)
    return timing


def _alternate(
    ours: Callable[[], Timing], theirs: Callable[[], Timing], rounds: int
) -> tuple[Timing, Timing]:
    """Warm both up (compiles ours), then `rounds` × (ours, theirs); their per-call timings."""
    ours(), theirs()
    a: Timing = {"seconds": [], "cpu_seconds": []}
    b: Timing = {"seconds": [], "cpu_seconds": []}
    for _ in range(rounds):
        for side, timing in ((a, ours()), (b, theirs())):
            for k in side:
                side[k] += timing[k]
    return a, b


def train(worker: LeRobotWorker, batches: list[int], rounds: int, steps: int) -> list[Row]:
    from bench_models import train_runner

    from robopolicy.models.policy_presets import POLICY_PRESETS

    ours: dict[int, Timing] = {}
    theirs: dict[int, Timing] = {}
    for b in batches:
        run = train_runner(POLICY_PRESETS["diffusion_policy"], b)
        counter = iter(range(10**9))
        ours[b], theirs[b] = _alternate(
            lambda run=run, counter=counter: _timed(lambda: run(next(counter)), steps),
            lambda b=b: worker.request("train", batch=b, steps=steps),
            rounds,
        )
        print(
            f"batch {b}: ours {per_second(b, ours[b]['seconds']):.2f}, "
            f"LeRobot {per_second(b, theirs[b]['seconds']):.2f} samples/s",
            file=sys.stderr,
            flush=True,
        )
    return throughput_rows("sample", batches, ours, theirs)


def latency(worker: LeRobotWorker, rounds: int, steps: int) -> list[Row]:
    import jax
    from bench_models import policy_batch
    from flax import nnx

    from robopolicy.models.policy import Policy
    from robopolicy.models.policy_presets import POLICY_PRESETS

    base = POLICY_PRESETS["diffusion_policy"]
    model = Policy(base, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    batch = policy_batch(base, 1)
    cfgs = {
        "DDIM 10": dataclasses.replace(base, diffusion_sampler="ddim", diffusion_inference_steps=10),
        "flow matching, Euler 10": dataclasses.replace(base, head="flow", flow_steps=10),
    }
    rows = []
    for name, cfg in cfgs.items():
        graphdef = nnx.graphdef(nnx.eval_shape(lambda cfg=cfg: Policy(cfg, rngs=nnx.Rngs(0))))
        fn = jax.jit(lambda p, b, k, g=graphdef: nnx.merge(g, p).sample_batch(b, k))
        keys = iter(range(10**9))
        if name == "DDIM 10":
            ours, theirs = _alternate(
                lambda fn=fn, keys=keys: _timed(lambda: fn(params, batch, jax.random.key(next(keys))), steps),
                lambda: worker.request("latency", steps=steps, inference_steps=10),
                rounds,
            )
            rows.append(
                Row(
                    f"ms per chunk, {name}, batch 1",
                    1e3 * statistics.median(ours["seconds"]),
                    1e3 * statistics.median(theirs["seconds"]),
                    higher_is_better=False,
                )
            )
        else:
            fn(params, batch, jax.random.key(0))
            ours = _timed(
                lambda fn=fn, keys=keys: fn(params, batch, jax.random.key(next(keys))), rounds * steps
            )
            rows.append(
                Row(
                    f"ms per chunk, {name}, batch 1",
                    1e3 * statistics.median(ours["seconds"]),
                    None,
                    higher_is_better=False,
                )
            )
    return rows


def encoder(worker: LeRobotWorker, frame_counts: list[int], rounds: int, steps: int) -> list[Row]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from robopolicy.models.image_encoder import make_image_encoder
    from robopolicy.models.policy_presets import POLICY_PRESETS

    cfg = POLICY_PRESETS["diffusion_policy"]
    graphdef, params = nnx.split(make_image_encoder(cfg, rngs=nnx.Rngs(0)), nnx.Param)

    @jax.jit
    def grad(p: nnx.State, x: jax.Array) -> nnx.State:
        return jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x) ** 2))(p)

    ours: dict[int, Timing] = {}
    theirs: dict[int, Timing] = {}
    for n in frame_counts:
        rng = np.random.default_rng(n)
        x = jnp.asarray(rng.integers(0, 256, (n, cfg.image_size, cfg.image_size, 3), dtype=np.uint8))
        ours[n], theirs[n] = _alternate(
            lambda x=x: _timed(lambda: grad(params, x), steps),
            lambda n=n: worker.request("encoder", frames=n, steps=steps),
            rounds,
        )
    return throughput_rows("frame", frame_counts, ours, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parts", default="train,latency,encoder", help="comma-separated: train,latency,encoder"
    )
    parser.add_argument("--batches", default="8,64", help="training batch sizes")
    parser.add_argument("--encoder-frames", default="16,128", help="frames per encoder call")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds")
    parser.add_argument("--steps", type=int, default=2, help="timed calls per side per round")
    parser.add_argument(
        "--lerobot-venv",
        type=Path,
        default=Path("runs/lerobot-venv"),
        help="LeRobot's venv; made here if missing",
    )
    parser.add_argument(
        "--torch-spec", default="torch torchvision", help="what pip installs as torch into a new LeRobot venv"
    )
    parser.add_argument(
        "--lerobot-crop",
        type=int,
        default=0,
        help="LeRobot's random crop size (0: none, both sides see the full image)",
    )
    args = parser.parse_args()

    import jax
    import numpy as np
    from machine import machine_line

    from robopolicy.models.policy_presets import POLICY_PRESETS

    python = ensure_lerobot_venv(args.lerobot_venv, args.torch_spec)
    worker = LeRobotWorker(python)
    cfg = POLICY_PRESETS["diffusion_policy"]
    try:
        info = worker.request(
            "setup",
            cameras=len(cfg.cameras),
            image_size=cfg.image_size,
            state_dim=cfg.state_dim,
            action_dim=cfg.action_dim,
            obs_horizon=cfg.obs_horizon,
            horizon=cfg.action_horizon,
            n_action_steps=cfg.n_action_steps,
            down_dims=list(UNET_DOWN_DIMS),
            crop=args.lerobot_crop,
        )
        from flax import nnx

        from robopolicy.models.policy import Policy

        model = nnx.eval_shape(lambda: Policy(cfg, rngs=nnx.Rngs(0)))
        ours_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        print(machine_line())
        crop = f"random crop {args.lerobot_crop}²" if args.lerobot_crop else "no crop"
        print(
            f"LeRobot {info['lerobot']} on torch {info['torch']} ({info['threads']} threads, {crop}); "
            f"{args.rounds} alternating rounds × {args.steps} calls per side; "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}\n"
        )
        print(
            f"parameters: robopolicy {ours_params / 1e6:.2f} M, LeRobot {info['params'] / 1e6:.2f} M",
            flush=True,
        )
        batches = [int(b) for b in args.batches.split(",")]
        for part in args.parts.split(","):
            if part == "train":
                rows = train(worker, batches, args.rounds, args.steps)
                title = "training, 2 cameras 84², To=2, H=16; per batch size"
            elif part == "latency":
                rows = latency(worker, args.rounds, args.steps)
                title = "inference"
            elif part == "encoder":
                frames = [int(n) for n in args.encoder_frames.split(",")]
                rows = encoder(worker, frames, args.rounds, args.steps)
                title = "ResNet-18 GN encoder alone, forward + backward; per frames in a call"
            else:
                parser.error(f"--parts: unknown part {part!r}")
            print("\n" + markdown_table(title, rows), flush=True)
    finally:
        worker.close()


if __name__ == "__main__":
    main()
