"""Simulation throughput of the composed suite scenes, next to cube_on_plate, measured in one run.

Prints env steps/s (random actions, default render options) for physics only and for two cameras at
128×128, for one task of each scene family and for cube_on_plate, plus each figure as a ratio to
cube_on_plate's. The expert-success table comes from `robopolicy expert-check --suite NAME`.
Run: `python benchmarks/bench_suites.py [--steps 400]`.
"""

from __future__ import annotations

import argparse

from bench_sim import steps_per_second
from machine import machine_line

from robopolicy.sim import TabletopEnv

TASKS = (
    "cube_on_plate",
    "spatial_between_plate_and_box",
    "object_red_cube",
    "goal_open_drawer",
    "memory_bowl_on_lit_peg_after_drawer",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    print(machine_line())
    rows: dict[str, tuple[float, float]] = {}
    for task in TASKS:
        figures = []
        for kwargs in ({"render": False}, {"image_size": 128}):
            env = TabletopEnv(task, **kwargs)
            figures.append(steps_per_second(env, args.steps))
            env.close()
        rows[task] = (figures[0], figures[1])
    base = rows["cube_on_plate"]
    print("| task | geoms | physics only | ratio | 2 cameras 128² | ratio |")
    print("|---|---|---|---|---|---|")
    for task, (physics, cameras) in rows.items():
        env = TabletopEnv(task, render=False)
        ngeom = env.model.ngeom
        env.close()
        print(
            f"| {task} | {ngeom} | {physics:.0f} | {physics / base[0]:.2f} | {cameras:.0f} | {cameras / base[1]:.2f} |"
        )


if __name__ == "__main__":
    main()
