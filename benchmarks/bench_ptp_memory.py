"""Long context with and without Past-Token Prediction on memory tasks, at a CPU-sized scale.

The pipeline of `notebooks/04_long_context_ptp.ipynb` (its full config, with 5 held-out demos and a
short-context reference), run on each task of `--tasks` in turn: scripted demos of the task, a
short-context stage-1 policy (its encoder is kept), the embedding cache, a short-context head (To=2)
and two long-context heads on the cached embeddings that differ only in `past_steps` (0 vs all), then

- offline, on held-out expert episodes: the MSE (normalized units) between each head's predicted
  past tokens and the recorded actions at those steps, over every step whose context lies inside
  the episode;
- closed loop, on the task's fixed initial states: success with 95 % Wilson intervals for a
  short-context head (To=2, no PTP), the long-context heads without and with PTP, and PTP with
  self-verification over `--candidates` chunks.

Tasks are named as anywhere else: bundled ones, your own through `--tasks-dir DIR` (repeatable, as
for the `robopolicy` commands) or `ROBOPOLICY_TASK_PATH`, and `TASK+oracle`, the task with its cue
lit all episode. `--oracle` adds the oracle arm of every task with a cue: the same protocol on
`TASK+oracle` (same demo seeds and initial states), the control that shows the config can learn
the task at all when no memory is needed.

Run: `PYTHONPATH=. python benchmarks/bench_ptp_memory.py [--tasks A B ...] [--tasks-dir DIR] [--oracle]
[--demos 50] [--episodes 20] ...` (prints one markdown table, a row per task and variant; writes each
task's runs to `OUT/TASK/` and every row to `OUT/results.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from robopolicy.tasks.spec import load_task_spec
from robopolicy.tasks.task_path import prepend_task_dirs
from robopolicy.tasks.variants import oracle_task, split_variant
from robopolicy.train.loaded_policy import LoadedPolicy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train


def task_list(tasks: Sequence[str], oracle: bool) -> tuple[list[str], list[str]]:
    """(the tasks to run, in order, each followed by its oracle arm when `oracle`; the tasks given
    that have no cue, hence no oracle arm). Every name is checked here, before any work."""
    run: list[str] = []
    no_cue: list[str] = []
    for task in dict.fromkeys(tasks):
        spec = load_task_spec(task)  # an unknown task or a broken spec fails here, in one line
        run.append(task)
        if oracle and split_variant(task)[1] is None:
            if spec.cue is None:
                no_cue.append(task)
            else:
                run.append(oracle_task(task))
    return list(dict.fromkeys(run)), no_cue


def run_task(task: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The whole protocol on one task: {"rows": one per variant, "timings": seconds per stage}."""
    cameras = ("agentview",)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    demos = collect(
        CollectConfig(
            task=task,
            num_episodes=args.demos,
            image_size=args.image_size,
            cameras=cameras,
            noise_std=0.1,
            out=str(out / "demos"),
            workers=args.workers,
        ),
        progress=False,
    )
    env = TabletopEnv(task, image_size=args.image_size, cameras=cameras)
    heldout = [run_expert_episode(env, seed=100_000 + k) for k in range(args.heldout)]
    env.close()
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
            task,
            list(range(args.episodes)),
            execution=ExecutionSettings(self_verify_candidates=n, max_steps=args.max_steps),
            progress=False,
        )
        low, high = wilson_interval(summary.successes, len(summary.episodes))
        key = name.split(" (")[0] if not name.startswith("PTP") else "PTP"
        rows.append(
            {
                "task": task,
                "variant": name,
                "successes": summary.successes,
                "episodes": len(summary.episodes),
                "wilson95": [low, high],
                "past_token_mse": offline.get(key, float("nan")),
                "final_loss": losses[key],
                "eval_s": summary.timings["total_seconds"],
            }
        )
    return {"rows": rows, "timings": timings}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | variant | success | 95 % Wilson | past-token MSE (held-out) | final loss | eval time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['variant']} | {r['successes']}/{r['episodes']} "
            f"| [{r['wilson95'][0]:.2f}, {r['wilson95'][1]:.2f}] | {r['past_token_mse']:.3f} "
            f"| {r['final_loss']:.3f} | {r['eval_s']:.0f} s |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=["memory_press_lit_button"], metavar="TASK")
    p.add_argument(
        "--tasks-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for task folders (DIR/TASK/task.toml) here, ahead of ROBOPOLICY_TASK_PATH; repeatable",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also run every task with a cue as TASK+oracle (cue lit all episode)",
    )
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
    p.add_argument("--max-steps", type=int, default=0, help="episode step cap in evaluation (0: the task's)")
    p.add_argument("--workers", type=int, default=0, help="collection processes (0: one per core)")
    args = p.parse_args(argv)
    prepend_task_dirs(args.tasks_dir)
    tasks, no_cue = task_list(args.tasks, args.oracle)
    if no_cue:
        print(f"no oracle arm (no [cue]): {', '.join(no_cue)}", file=sys.stderr)
    out = Path(args.out)
    results = {task: run_task(task, args, out / task) for task in tasks}
    rows = [r for result in results.values() for r in result["rows"]]

    print(f"\n{machine_line()}\n{vars(args)}\n")
    print(table(rows))
    for task, result in results.items():
        print(f"timings {task}:", {k: round(v) for k, v in result["timings"].items()})
    summary = {
        "machine": machine_line(),
        "args": vars(args),
        "tasks": tasks,
        "no_oracle_arm": no_cue,
        "rows": rows,
        "timings": {task: result["timings"] for task, result in results.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
