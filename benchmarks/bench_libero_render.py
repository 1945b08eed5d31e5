"""LIBERO env steps per second under each render setting of the LIBERO client (clients/libero).

One libero_spatial task, LIBERO's initial state 0, then `--steps` control steps of the scripted
expert (so the arm moves and the scene changes) with both cameras (agentview and eye-in-hand)
rendered at each setting, and without cameras. Reported: steps/s and the share of the step spent
rendering. Run in the client's environment (`make libero-client`):

    clients/libero/.venv/bin/python benchmarks/bench_libero_render.py [--task 0] [--steps 40]

prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

from robopolicy_libero.expert import PickPlaceExpert
from robopolicy_libero.libero_env import LiberoEnv, RenderOptions
from robopolicy_libero.suites import suite_tasks

SETTINGS = {
    "256², default (shadows, reflections, 4× MSAA)": RenderOptions(),
    "256², no shadows": RenderOptions(shadows=False),
    "256², no reflections": RenderOptions(reflections=False),
    "256², no MSAA": RenderOptions(msaa_samples=0),
    "256², none of the three": RenderOptions(shadows=False, reflections=False, msaa_samples=0),
    "128², default": RenderOptions(camera_size=128),
    "128², none of the three": RenderOptions(
        camera_size=128, shadows=False, reflections=False, msaa_samples=0
    ),
    "no cameras": RenderOptions(cameras=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    (task,) = suite_tasks(args.suite, str(args.task))
    print(f"{datetime.date.today()} · {os.cpu_count()} cores ({platform.processor() or platform.machine()})")
    print(f"{args.suite} task {args.task}, {args.steps} expert steps per setting\n")
    print("| render setting | steps/s | rendering share |\n|---|---|---|")
    for name, options in SETTINGS.items():
        env = LiberoEnv(task, options)
        try:
            obs = env.start(0)
            expert = PickPlaceExpert(env)
            env.render_seconds = 0.0
            started = time.perf_counter()
            for _ in range(args.steps):
                obs, _, _ = env.step(expert.act(obs))
            seconds = time.perf_counter() - started
        finally:
            env.close()
        print(f"| {name} | {args.steps / seconds:.1f} | {env.render_seconds / seconds:.0%} |", flush=True)


if __name__ == "__main__":
    main()
