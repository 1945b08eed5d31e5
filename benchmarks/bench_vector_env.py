"""Env steps/s of `robopolicy.sim.make` and `make_vector`, and of robosuite's Lift, in one run.

Cases (random actions in [-0.5, 0.5], episodes reset when they end; a vector env counts one env step
per env): one env in this process, physics only and with 2 cameras at 128×128; `make_vector` with 2
workers, physics only and with 2 cameras at 128×128, observations through shared memory or through
the sockets (does shared memory matter?); and, when a Python with robosuite is given, robosuite's
Lift (Panda, OSC, 20 Hz) physics only and with 2 cameras at 128×128, measured in a subprocess in the
same run. Each case runs `--rounds` times, interleaved, and reports the median.

Run: `python benchmarks/bench_vector_env.py [--steps 400] [--rounds 3] [--robosuite-python /tmp/rs/bin/python]`
(robosuite 1.5 needs mujoco<3.4, hence its own venv: `python3 -m venv /tmp/rs &&
/tmp/rs/bin/pip install robosuite 'mujoco<3.4'`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable

import numpy as np
from machine import machine_line  # benchmarks/ is on sys.path when this script runs

import robopolicy.sim as sim  # sets MUJOCO_GL before mujoco loads

# Runs inside the robosuite venv; prints {"physics": steps/s, "cameras": steps/s} as JSON.
_ROBOSUITE_SCRIPT = r"""
import json, sys, time
import numpy as np
import robosuite

def rate(cameras, steps):
    kwargs = dict(robots="Panda", has_renderer=False, control_freq=20, reward_shaping=False)
    if cameras:
        kwargs.update(has_offscreen_renderer=True, use_camera_obs=True,
                      camera_names=["agentview", "robot0_eye_in_hand"], camera_heights=128, camera_widths=128)
    else:
        kwargs.update(has_offscreen_renderer=False, use_camera_obs=False)
    env = robosuite.make("Lift", **kwargs)
    low, high = env.action_spec
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.5, 0.5, (steps, len(low))) * (high - low) / 2 + (high + low) / 2
    env.reset()
    for a in actions[:5]:
        env.step(a)
    start = time.perf_counter()
    for a in actions:
        _, _, done, _ = env.step(a)
        if done:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed

steps = int(sys.argv[1])
print(json.dumps({"version": robosuite.__version__, "physics": rate(False, steps), "cameras": rate(True, steps)}))
"""


def single_env_rate(steps: int, **env_kwargs: object) -> float:
    env = sim.make("cube_on_plate", **env_kwargs)
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (steps, 7)).astype(np.float32)
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def vector_env_rate(steps: int, num_envs: int, parent_cpu_us: list[float], **kwargs: object) -> float:
    """Env steps/s; appends the parent's CPU time per vector step (µs) to `parent_cpu_us`."""
    with sim.make_vector("cube_on_plate", num_envs, **kwargs) as venv:
        actions = np.random.default_rng(0).uniform(-0.5, 0.5, (steps, num_envs, 7)).astype(np.float32)
        venv.reset(seed=0)  # starts the workers; not timed
        for a in actions[:5]:
            venv.step(a)
        start, cpu_start = time.perf_counter(), time.process_time()
        for a in actions:
            venv.step(a)  # NEXT_STEP autoreset handles ended episodes
        elapsed = time.perf_counter() - start
        parent_cpu_us.append((time.process_time() - cpu_start) / steps * 1e6)
    return steps * num_envs / elapsed


def robosuite_rates(python: str, steps: int) -> dict[str, float] | str:
    """robosuite's figures, or why there are none."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    try:
        out = subprocess.run(
            [python, "-c", _ROBOSUITE_SCRIPT, str(steps)],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"could not run {python}: {err}"
    if out.returncode != 0:
        return f"{python} failed (status {out.returncode}): {out.stderr.strip().splitlines()[-1:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="env steps per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--robosuite-python", default="", help="a Python with robosuite installed")
    parser.add_argument(
        "--robosuite-steps", type=int, default=100, help="robosuite env steps per case and round"
    )
    args = parser.parse_args()

    cam = {"image_size": 128}
    cpu: dict[str, list[float]] = {k: [] for k in ("2 workers, physics only", "shm", "sockets", "1 worker")}
    cases: dict[str, Callable[[], float]] = {
        "1 env, physics only": lambda: single_env_rate(args.steps, render=False),
        "1 env, 2 cameras 128²": lambda: single_env_rate(args.steps, **cam),
        "2 workers, physics only": lambda: vector_env_rate(
            args.steps // 2, 2, cpu["2 workers, physics only"], render=False
        ),
        "2 workers, 2 cameras 128², shared memory": lambda: vector_env_rate(
            args.steps // 2, 2, cpu["shm"], **cam
        ),
        "2 workers, 2 cameras 128², through sockets": lambda: vector_env_rate(
            args.steps // 2, 2, cpu["sockets"], shared_memory=False, **cam
        ),
        "1 worker, 2 cameras 128², shared memory": lambda: vector_env_rate(
            args.steps, 1, cpu["1 worker"], **cam
        ),
    }
    load_before = os.getloadavg()[0]
    rates: dict[str, list[float]] = {name: [] for name in cases}
    robosuite: list[dict[str, float] | str] = []
    for _ in range(args.rounds):
        for name, case in cases.items():
            rates[name].append(case())
        if args.robosuite_python:
            robosuite.append(robosuite_rates(args.robosuite_python, args.robosuite_steps))

    print(machine_line(), f"· MUJOCO_GL={os.environ['MUJOCO_GL']}")
    print(
        f"1-min load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (cores: {os.cpu_count()})"
    )
    median = {name: float(np.median(r)) for name, r in rates.items()}
    base_physics, base_cams = median["1 env, physics only"], median["1 env, 2 cameras 128²"]
    print("| case | env steps/s (median) | rounds | vs 1 env, same cameras |")
    print("|---|---|---|---|")
    for name, value in median.items():
        base = base_physics if "physics" in name else base_cams
        rounds = ", ".join(f"{r:.0f}" for r in rates[name])
        print(f"| {name} | {value:.0f} | {rounds} | {value / base:.2f}× |")
    cpu_text = ", ".join(f"{k} {np.median(v):.0f}" for k, v in cpu.items())
    print(f"parent CPU time per vector step, µs (median): {cpu_text}")
    if not args.robosuite_python:
        print("robosuite: not measured (no --robosuite-python given)")
    elif any(isinstance(r, str) for r in robosuite):
        print("robosuite:", next(r for r in robosuite if isinstance(r, str)))
    else:
        rs = {key: float(np.median([r[key] for r in robosuite])) for key in ("physics", "cameras")}
        version = robosuite[0]["version"]
        rounds = {key: ", ".join(f"{r[key]:.1f}" for r in robosuite) for key in ("physics", "cameras")}
        print(f"| robosuite {version} Lift, physics only | {rs['physics']:.1f} | {rounds['physics']} | |")
        print(f"| robosuite {version} Lift, 2 cameras 128² | {rs['cameras']:.1f} | {rounds['cameras']} | |")
        print(
            f"ratio robopolicy / robosuite: physics only {base_physics / rs['physics']:.1f}×, "
            f"2 cameras 128² {base_cams / rs['cameras']:.1f}× (1 env), "
            f"{median['2 workers, 2 cameras 128², shared memory'] / rs['cameras']:.1f}× (2 workers)"
        )


if __name__ == "__main__":
    main()
