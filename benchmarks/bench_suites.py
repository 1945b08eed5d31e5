"""Simulation throughput of the composed suite scenes, next to cube_on_plate, measured in one run.

Prints env steps/s (random actions, default render options) for physics only and for two cameras at
128×128, for one task of each scene family and for cube_on_plate, plus each figure as a ratio to
cube_on_plate's. On a shared machine the settings are measured in interleaved rounds and the best
round is kept, which is the least disturbed by other load. The expert-success table comes from
`robopolicy expert-check --suite NAME`. Run: `python benchmarks/bench_suites.py [--steps 300] [--rounds 3]`.
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
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    best: dict[tuple[str, int], float] = {}
    settings = ({"render": False}, {"image_size": 128})
    for _ in range(args.rounds):
        for task in TASKS:
            for k, kwargs in enumerate(settings):
                env = TabletopEnv(task, **kwargs)
                best[task, k] = max(best.get((task, k), 0.0), steps_per_second(env, args.steps))
                env.close()
    rows = {task: (best[task, 0], best[task, 1]) for task in TASKS}
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
