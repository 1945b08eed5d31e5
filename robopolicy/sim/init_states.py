"""Fixed initial states for evaluation, LIBERO-style: 50 per task, generated once and committed.

Seed rule. Every initial state is drawn by `TabletopEnv.sample_init_state(seed, stream)` from
`np.random.default_rng([task_key(task), stream, seed])`, where task_key is the CRC-32 of the task name.
Data collection uses stream 0 (`COLLECTION_STREAM`) with seeds 0, 1, 2, ...; the fixed evaluation
states use stream 1 (`EVAL_STREAM`) with seeds 0..n-1. Different streams give different seed
sequences, so evaluation states never coincide with collection states, whatever seeds collection uses.

The file `init_states.npz` next to the task's `task.toml` (on the task search path, see
`robopolicy.tasks.task_path`) holds the states (n, D) float64 and a fingerprint of the model (nq, nv,
state size, SHA-256 of the generated MJCF). If the scene or robot changes, loading fails with a
message that says how to regenerate: `robopolicy init-states <task>`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from robopolicy.errors import UserError
from robopolicy.sim.env import COLLECTION_STREAM, EnvConfig, TabletopEnv, scene_xml
from robopolicy.tasks.scene_mjcf import RenderConfig
from robopolicy.tasks.task_path import find_task
from robopolicy.tasks.variants import split_variant

EVAL_STREAM = 1
NUM_INIT_STATES = 50
assert EVAL_STREAM != COLLECTION_STREAM


class InitStatesError(UserError):
    """The stored initial states are missing or no longer match the simulation model."""


@dataclass(frozen=True)
class InitStatesConfig:
    """Generate a task's fixed evaluation initial states into init_states.npz next to its task.toml.

    Attributes:
        task: the task, by name (a folder on the task search path).
        num_states: how many states (seeds 0..num_states-1 of the evaluation stream).
    """

    task: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="TASK")] = ""
    num_states: Annotated[int, tyro.conf.arg(aliases=("-n",))] = NUM_INIT_STATES

    def __post_init__(self) -> None:
        if self.num_states < 1:
            raise ValueError(f"InitStatesConfig: num_states must be >= 1, got {self.num_states}")


def init_states_file(task: str) -> Path:
    """Path of the task's `init_states.npz`, next to its `task.toml`."""
    return find_task(task) / "init_states.npz"


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
    try:
        np.savez_compressed(path, states=states, stream=np.asarray(EVAL_STREAM), **fingerprint)
    except OSError as e:
        raise UserError(f"{path}: cannot write the initial states ({e.strerror or e})") from None
    return path


def write_init_states(config: InitStatesConfig) -> Path:
    """`robopolicy init-states TASK`: the task's fixed states, written next to its task.toml."""
    if not config.task:
        raise UserError("name the task: robopolicy init-states TASK [-n N]")
    return save_init_states(config.task, config.num_states)


def load_init_states(task: str, env: TabletopEnv | None = None) -> np.ndarray:
    """(50, D) float64 fixed initial states of `task`, checked against the current model.

    Pass `env` to check against an existing env (saves building one); its task must match.
    """
    path = init_states_file(task)
    task = split_variant(task)[0]  # a variant runs from its task's own states
    regen = f"regenerate with `robopolicy init-states {task}`"
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
