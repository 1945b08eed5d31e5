"""Fixed initial states for evaluation, LIBERO-style: 50 per task, generated once and committed.

Seed rule. Every initial state is drawn by `TabletopEnv.sample_init_state(seed, stream)` from
`np.random.default_rng([task_key(task), stream, seed])`, where task_key is the CRC-32 of the task name.
Data collection uses stream 0 (`COLLECTION_STREAM`) with seeds 0, 1, 2, ...; the fixed evaluation
states use stream 1 (`EVAL_STREAM`) with seeds 0..n-1. Different streams give different seed
sequences, so evaluation states never coincide with collection states, whatever seeds collection uses.

The file `envs/<task>/init_states.npz` holds the states (n, D) float64 and a fingerprint of the model
(nq, nv, state size, SHA-256 of the generated MJCF). If the scene or robot changes, loading fails with
a message that says how to regenerate: `python -m robopolicy.sim.init_states <task>`.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from robopolicy.errors import UserError
from robopolicy.paths import envs_dir
from robopolicy.sim.env import COLLECTION_STREAM, EnvConfig, TabletopEnv, scene_xml
from robopolicy.sim.scene import RenderConfig

EVAL_STREAM = 1
NUM_INIT_STATES = 50
assert EVAL_STREAM != COLLECTION_STREAM


class InitStatesError(UserError):
    """The stored initial states are missing or no longer match the simulation model."""


def init_states_file(task: str) -> Path:
    """Path of `envs/<task>/init_states.npz`."""
    return envs_dir() / task / "init_states.npz"


def model_fingerprint(env: TabletopEnv) -> dict[str, np.ndarray]:
    """Arrays that identify the model the states belong to.

    The hash covers the MJCF generated with default render options, so that rendering choices (which
    do not change physics) do not invalidate the states.
    """
    xml = scene_xml(env.spec, RenderConfig(), env.config.robot)
    digest = hashlib.sha256(xml.encode("utf-8")).hexdigest()
    return {
        "nq": np.asarray(env.model.nq),
        "nv": np.asarray(env.model.nv),
        "state_size": np.asarray(env.state_size),
        "mjcf_sha256": np.asarray(digest),
    }


def _physics_env(task: str) -> TabletopEnv:
    return TabletopEnv(config=EnvConfig(task=task, render=False))


def generate_init_states(task: str, n: int = NUM_INIT_STATES, stream: int = EVAL_STREAM) -> np.ndarray:
    """(n, D) float64 initial states drawn with seeds 0..n-1 of `stream` (never the collection stream)."""
    if stream == COLLECTION_STREAM:
        raise ValueError(
            f"stream {COLLECTION_STREAM} is the collection stream; fixed states must use another"
        )
    env = _physics_env(task)
    try:
        return np.stack([env.sample_init_state(i, stream=stream) for i in range(n)])
    finally:
        env.close()


def save_init_states(task: str, n: int = NUM_INIT_STATES) -> Path:
    """Generate the fixed states of `task` and write them with the model fingerprint."""
    env = _physics_env(task)
    fingerprint = model_fingerprint(env)
    env.close()
    states = generate_init_states(task, n)
    path = init_states_file(task)
    np.savez_compressed(path, states=states, stream=np.asarray(EVAL_STREAM), **fingerprint)
    return path


def load_init_states(task: str, env: TabletopEnv | None = None) -> np.ndarray:
    """(50, D) float64 fixed initial states of `task`, checked against the current model.

    Pass `env` to check against an existing env (saves building one); its task must match.
    """
    path = init_states_file(task)
    regen = f"regenerate with `python -m robopolicy.sim.init_states {task}`"
    if not path.is_file():
        raise InitStatesError(f"{path}: fixed initial states not found; {regen}")
    with np.load(path, allow_pickle=False) as stored:
        data = {k: stored[k] for k in stored.files}
    own = env is None
    env = env or _physics_env(task)
    if env.spec.name != task:
        raise ValueError(f"env is for task '{env.spec.name}', not '{task}'")
    try:
        expected = model_fingerprint(env)
    finally:
        if own:
            env.close()
    for key, value in expected.items():
        if key not in data or data[key].item() != value.item():
            got = data[key].item() if key in data else "missing"
            raise InitStatesError(
                f"{path}: stored initial states were made for a different model ({key}: stored {got}, "
                f"current {value.item()}); {regen}"
            )
    return data["states"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the fixed evaluation initial states of a task.")
    parser.add_argument("task", help="task name, e.g. cube_on_plate")
    parser.add_argument("-n", type=int, default=NUM_INIT_STATES, help="number of states")
    args = parser.parse_args(argv)
    path = save_init_states(args.task, args.n)
    print(f"wrote {args.n} initial states to {path}")


if __name__ == "__main__":
    main()
