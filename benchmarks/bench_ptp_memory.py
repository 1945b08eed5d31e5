"""Long context with and without Past-Token Prediction on a memory task, at a CPU-sized scale.

The pipeline of `notebooks/04_long_context_ptp.ipynb` (its full config, with 5 held-out demos and a
short-context reference): scripted demos of one memory task, a short-context stage-1 policy (its
encoder is kept), the embedding cache, a short-context head (To=2) and two long-context heads on the
cached embeddings that differ only in `past_steps` (0 vs all), then

- offline, on held-out expert episodes: the MSE (normalized units) between each head's predicted
  past tokens and the recorded actions at those steps, over every step whose context lies inside
  the episode;
- closed loop, on the task's fixed initial states: success with 95 % Wilson intervals for a
  short-context head (To=2, no PTP), the long-context heads without and with PTP, and PTP with
  self-verification over `--candidates` chunks.

Run: `PYTHONPATH=. python benchmarks/bench_ptp_memory.py [--demos 50] [--episodes 20] ...`
(prints a markdown table and writes `OUT/results.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy import load_policy
from robopolicy.data.collect import CollectConfig, collect
from robopolicy.eval.evaluate_checkpoint import evaluate_policy
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.recorded_windows import past_token_errors
from robopolicy.eval.stats import wilson_interval
from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.policy_presets import POLICY_PRESETS
from robopolicy.sim import TabletopEnv, run_expert_episode
from robopolicy.train.loaded_policy import LoadedPolicy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="memory_press_lit_button")
    p.add_argument("--out", default="runs/bench_ptp_memory")
    p.add_argument("--demos", type=int, default=50)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--stage1-steps", type=int, default=1500)
    p.add_argument("--head-steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--obs-horizon", type=int, default=8)
    p.add_argument("--action-horizon", type=int, default=16)
    p.add_argument("--frame-stride", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--heldout", type=int, default=5)
    p.add_argument("--candidates", type=int, default=8)
    args = p.parse_args()
    out = Path(args.out)
    cameras = ("agentview",)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    demos = collect(
        CollectConfig(
            task=args.task,
            num_episodes=args.demos,
            image_size=args.image_size,
            cameras=cameras,
            noise_std=0.1,
            out=str(out / "demos"),
        ),
        progress=False,
    )
    env = TabletopEnv(args.task, image_size=args.image_size, cameras=cameras)
    heldout = [run_expert_episode(env, seed=100_000 + k) for k in range(args.heldout)]
    timings["collect_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    stage1 = train(
        TrainConfig(
            dataset=str(demos.dataset_dir),
            out=str(out / "stage1"),
            steps=args.stage1_steps,
            batch_size=args.batch,
            log=LogConfig(every=100),
            checkpoint_every=args.stage1_steps,
            policy=PolicyConfig(
                cameras=cameras,
                image_size=args.image_size,
                encoder_channels=(16, 32),
                feature_dim=32,
                pooling="flatten",
                obs_horizon=2,
                action_horizon=16,
                n_action_steps=8,
                denoiser_width=256,
                denoiser_depth=2,
                image_shift=2,
            ),
            optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=100),
        ),
        progress=False,
    )
    timings["stage1_s"] = time.perf_counter() - t0

    head = dataclasses.replace(
        POLICY_PRESETS["ptp_stage2"],
        cameras=cameras,
        obs_horizon=args.obs_horizon,
        action_horizon=args.action_horizon,
        transformer_dim=args.width,
        transformer_layers=args.layers,
        transformer_heads=4,
        diffusion_sampler="ddim",
        diffusion_inference_steps=args.ddim_steps,
    )
    policies: dict[str, LoadedPolicy] = {}
    losses: dict[str, float] = {}
    # (name, To, past_steps, frame stride); the short-context head (To=2, consecutive frames) is the
    # reference a long context must beat on a memory task.
    heads = [
        ("short context", 2, 0, 1),
        ("no PTP", args.obs_horizon, 0, args.frame_stride),
        ("PTP", args.obs_horizon, PAST_STEPS_ALL, args.frame_stride),
    ]
    for name, obs_horizon, past, stride in heads:
        t0 = time.perf_counter()
        result = train(
            TrainConfig(
                dataset=str(demos.dataset_dir),
                encoder=str(stage1.run_dir),
                out=str(out / ("head_" + name.replace(" ", "_"))),
                steps=args.head_steps,
                batch_size=args.batch,
                log=LogConfig(every=100),
                checkpoint_every=args.head_steps,
                policy=dataclasses.replace(
                    head, obs_horizon=obs_horizon, past_steps=past, frame_stride=stride
                ),
                optimizer=OptimizerConfig(learning_rate=3e-4, warmup_steps=100),
            ),
            progress=False,
        )
        timings[f"head {name}_s"] = time.perf_counter() - t0
        losses[name] = result.final_loss
        policies[name] = load_policy(result.run_dir)

    # Every past token, also for the head trained without them; the mean over action dimensions.
    offline = {
        name: float(past_token_errors(policies[name], heldout, tokens="all").mean())
        for name in ("no PTP", "PTP")
    }

    rows = []
    for name, pol, n in (
        ("short context (To=2)", policies["short context"], 1),
        ("no PTP", policies["no PTP"], 1),
        ("PTP", policies["PTP"], 1),
        (f"PTP + self-verification (N={args.candidates})", policies["PTP"], args.candidates),
    ):
        summary = evaluate_policy(
            pol,
            args.task,
            list(range(args.episodes)),
            execution=ExecutionSettings(self_verify_candidates=n),
            progress=False,
        )
        low, high = wilson_interval(summary.successes, len(summary.episodes))
        key = name.split(" (")[0] if not name.startswith("PTP") else "PTP"
        rows.append(
            {
                "variant": name,
                "successes": summary.successes,
                "episodes": len(summary.episodes),
                "wilson95": [low, high],
                "past_token_mse": offline.get(key, float("nan")),
                "final_loss": losses[key],
                "eval_s": summary.timings["total_seconds"],
            }
        )
    env.close()

    print(f"\n{machine_line()}\n{vars(args)}\n")
    print("| variant | success | 95 % Wilson | past-token MSE (held-out) | final loss | eval time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['successes']}/{r['episodes']} | [{r['wilson95'][0]:.2f}, {r['wilson95'][1]:.2f}] "
            f"| {r['past_token_mse']:.3f} | {r['final_loss']:.3f} | {r['eval_s']:.0f} s |"
        )
    print("timings:", {k: round(v) for k, v in timings.items()})
    (out / "results.json").write_text(
        json.dumps(
            {"machine": machine_line(), "args": vars(args), "rows": rows, "timings": timings}, indent=1
        )
    )


if __name__ == "__main__":
    main()
