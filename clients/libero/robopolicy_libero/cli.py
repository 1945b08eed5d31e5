"""`robopolicy-libero <command>`: evaluate a served policy in LIBERO, check and run the scripted
experts, record demonstrations as RLDS, record an observation. Exit status 2 with one line for bad
input, 1 with one line when a run cannot go on, 130 when interrupted."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from robopolicy_libero.errors import ClientInputError, RunStopped
from robopolicy_libero.libero_env import SETTLE_STEPS, RenderOptions


def _render_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rendering (a policy must be evaluated as its data was rendered)")
    group.add_argument("--camera-size", type=int, default=256, help="square render size (default 256)")
    group.add_argument("--no-shadows", action="store_true", help="render without shadows")
    group.add_argument("--no-reflections", action="store_true", help="render without reflections")
    group.add_argument(
        "--msaa-samples", type=int, default=4, help="multisampling samples (0: off; default 4)"
    )


def _render(args: argparse.Namespace) -> RenderOptions:
    return RenderOptions(
        camera_size=args.camera_size,
        shadows=not args.no_shadows,
        reflections=not args.no_reflections,
        msaa_samples=args.msaa_samples,
    )


def _run(args: argparse.Namespace) -> int:
    from robopolicy_libero.runner import RunOptions, run_evaluation

    options = RunOptions(
        policy=args.policy,
        suite=args.suite,
        log=args.log,
        tasks=args.tasks,
        init_states=args.init_states,
        seed=args.seed,
        replan_steps=args.replan_steps,
        settle_steps=args.settle_steps,
        render=_render(args),
        reconnect_timeout_s=args.reconnect_timeout_s,
    )
    episodes = run_evaluation(options)
    wins = sum(e["success"] for e in episodes)
    print(
        f"{wins}/{len(episodes)} episodes succeeded; log: {args.log} (robopolicy results import {args.log})"
    )
    return 0


def _expert_check(args: argparse.Namespace) -> int:
    from robopolicy_libero.demonstrations import expert_check

    results = expert_check(args.suite, args.tasks, args.init_states)
    print("\n| suite | task | instruction | success | mean steps | steps/s |\n|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.task.suite} | {r.task.index} | {r.task.instruction} | {r.successes}/{r.episodes} "
            f"| {r.mean_steps:.0f} | {r.steps_per_second:.1f} |"
        )
    return 0


def _collect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robopolicy_libero.demonstrations import collect

    name = args.name or f"{args.suite}_scripted"
    dataset = collect(args.suite, args.tasks, args.init_states, Path(args.out), name, _render(args))
    print(f"RLDS dataset (LIBERO layout): {dataset}")
    return 0


def _record_observation(args: argparse.Namespace) -> int:
    import numpy as np

    from robopolicy_libero.libero_env import LiberoEnv
    from robopolicy_libero.observation import CAMERAS
    from robopolicy_libero.suites import init_state_ids, suite_tasks

    (task,) = suite_tasks(args.suite, str(args.task))
    (state,) = init_state_ids(str(args.init_state), len(task.init_states))
    env = LiberoEnv(task, _render(args))
    try:
        obs = env.start(state)
    finally:
        env.close()
    keys = [*CAMERAS.values(), "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    np.savez_compressed(args.out, instruction=np.asarray(task.instruction), **{k: obs[k] for k in keys})
    print(f"{args.out}: {task.suite} task {task.index} state {state} after {SETTLE_STEPS} settle steps")
    return 0


def _expert_task_options(command: argparse.ArgumentParser) -> None:
    """The suite, tasks and initial states of the commands that run the scripted experts."""
    command.add_argument("--suite", required=True, help="libero_spatial or libero_object")
    command.add_argument("--tasks", default="", help="task indices, ranges (0-4) or names; all if empty")
    command.add_argument("--init-states", default="0:50", help="LIBERO initial states A:B (default 0:50)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robopolicy-libero", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="evaluate a served policy on LIBERO tasks × initial states")
    run.add_argument("--policy", default="ws://127.0.0.1:8000", help="the policy server (ws://HOST:PORT)")
    run.add_argument("--suite", required=True, help="libero_spatial, libero_object, libero_goal or libero_10")
    run.add_argument(
        "--tasks", default="", help="task indices, ranges (0-4) or names, comma-separated; all if empty"
    )
    run.add_argument(
        "--init-states", default="0:50", help="LIBERO initial states A:B, B excluded (default 0:50)"
    )
    run.add_argument(
        "--log", default="runs/libero/episodes.jsonl", help="episode log, appended to and resumed"
    )
    run.add_argument("--seed", type=int, default=0, help="the episodes' sampling seed (with the state id)")
    run.add_argument(
        "--replan-steps",
        type=int,
        default=5,
        help="actions executed per reply of a non-robopolicy server (0: all)",
    )
    run.add_argument(
        "--settle-steps", type=int, default=SETTLE_STEPS, help="no-op steps before the policy acts"
    )
    run.add_argument(
        "--reconnect-timeout-s", type=float, default=300.0, help="how long to wait for a lost server"
    )
    _render_options(run)
    run.set_defaults(func=_run)

    check = commands.add_parser(
        "expert-check", help="scripted-expert success on LIBERO tasks' initial states (no cameras)"
    )
    _expert_task_options(check)
    check.set_defaults(func=_expert_check)

    demos = commands.add_parser(
        "collect", help="record scripted-expert demonstrations as RLDS in LIBERO's layout"
    )
    _expert_task_options(demos)
    demos.add_argument("--out", required=True, help="folder: staged episodes, then the dataset")
    demos.add_argument("--name", default="", help="dataset name (default: SUITE_scripted)")
    _render_options(demos)
    demos.set_defaults(func=_collect)

    record = commands.add_parser(
        "record-observation", help="save one raw LIBERO observation (cameras, eef pose, gripper) as .npz"
    )
    record.add_argument("--suite", default="libero_spatial")
    record.add_argument("--task", type=int, default=0)
    record.add_argument("--init-state", type=int, default=0)
    record.add_argument("--out", required=True, help="the .npz file to write")
    _render_options(record)
    record.set_defaults(func=_record_observation)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ClientInputError as e:
        print(f"robopolicy-libero {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        print(f"robopolicy-libero {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"robopolicy-libero {args.command}: interrupted; logged episodes are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
