"""Simulation throughput and scripted-expert success.

Prints env steps/s for physics only, two cameras at 128×128 and two at 64×64 (random actions, default
render options), then the expert's success over the task's 50 fixed initial states with the mean
episode length. Run: `python benchmarks/bench_sim.py [--task cube_on_plate] [--steps 300]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robopolicy.sim import TabletopEnv, load_init_states
from robopolicy.sim.expert import run_expert_episode


def steps_per_second(env: TabletopEnv, num_steps: int) -> float:
    """Env steps/s over `num_steps` random actions, resetting when an episode ends."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.5, 0.5, size=(num_steps, env.action_dim))
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset(seed=0)
    return num_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cube_on_plate")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    for label, kwargs in (
        ("physics only (render=False)", {"render": False}),
        ("2 cameras 128x128", {"image_size": 128}),
        ("2 cameras 64x64", {"image_size": 64}),
    ):
        env = TabletopEnv(args.task, **kwargs)
        print(f"{label:32s} {steps_per_second(env, args.steps):8.1f} env steps/s")
        env.close()

    env = TabletopEnv(args.task, render=False)
    states = load_init_states(args.task, env)
    start = time.perf_counter()
    episodes = [run_expert_episode(env, init_state=s) for s in states]
    elapsed = time.perf_counter() - start
    success = np.mean([ep["success"] for ep in episodes])
    lengths = np.array([ep["num_steps"] for ep in episodes])
    print(
        f"expert on {len(states)} fixed states: success {success:.0%}, episode length mean {lengths.mean():.1f} "
        f"(min {lengths.min()}, max {lengths.max()}), {elapsed:.1f} s"
    )
    env.close()


if __name__ == "__main__":
    main()
