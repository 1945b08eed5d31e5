"""Configuration of an evaluation sweep, and its TOML form.

A sweep is the grid checkpoints × (suites' tasks + named tasks) × initial states × seeds ×
execution settings. Example `SWEEP.toml`:

    db = "runs/sweep/results.db"
    checkpoints = ["runs/a/train/checkpoints/3500"]   # explicit checkpoints (run folders: latest step),
                                                     # or policy servers: "ws://127.0.0.1:8000"
    run_dirs = ["runs/quickstart/train"]             # every checkpoint of these runs
    tasks = ["cube_on_plate"]
    suites = []
    init_states = "0:50"
    seeds = [0]
    workers = 2
    video_episodes = 1

    [[settings]]
    name = "chunk8"
    mode = "chunk"
    n_action_steps = 8

    [[settings]]
    name = "ensemble"
    mode = "temporal_ensemble"
    settle_steps = 10
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from robopolicy.errors import UserError
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.eval.remote_policy import is_remote
from robopolicy.typed_config import from_table, read_toml


@dataclass(frozen=True)
class SweepConfig:
    """What to evaluate and how.

    Attributes:
        db: the SQLite results file (created if missing; finished episodes in it are skipped).
        checkpoints: checkpoints to evaluate: a step folder, or a run / checkpoints folder (its latest step);
            or a policy server, ws://HOST:PORT (robopolicy's or any openpi-compatible one).
        run_dirs: training runs whose every checkpoint is evaluated.
        suites: task suites; each contributes all its tasks.
        tasks: tasks evaluated directly (outside any suite); 'TASK+oracle' keeps a memory task's cue
            lit all episode and is stored under that name (docs/tasks.md).
        init_states: fixed initial states per task, e.g. '0:50'; trial i uses state i.
        seeds: seeds of the policy's sampling noise; each (state, seed) pair is one episode.
        settings: execution settings; each is its own run per checkpoint.
        workers: parallel worker processes of the "local" backend; 0 runs everything in this process.
        backend: "local": a pool of `workers` processes, each loading the policy and running its
            episodes one at a time; "vector": this process runs the policy, batched over `num_envs`
            env worker processes (one inference call per step for all of them); "ray": units on a
            Ray cluster (the `[ray]` extra).
        num_envs: env worker processes of the "vector" backend.
        ray_address: cluster address for `ray.init`; empty starts or joins a local one
            (`robopolicy sweep --ray-address` overrides it).
        ray_num_cpus: CPUs each Ray task reserves (fractions allowed); Ray runs at most as many tasks
            on a node at once as its CPUs allow.
        ray_num_gpus: GPUs each Ray task reserves (fractions allowed, e.g. 0.25 puts four tasks on a
            card); Ray shows a task only the GPUs it reserved (CUDA_VISIBLE_DEVICES), so a task
            that should run its policy on a GPU must ask for one.
        obs_mapping: for policy servers that name none in their metadata (openpi's), the observation
            mapping requests are sent through, e.g. "openpi_libero" (see docs/deploy.md).
        blind: randomise the order in which policies are run (shared initial states), and do not name
            policies in progress output.
        blind_seed: seed of that order, recorded so a blind sweep can be audited afterwards.
        video_episodes: per run and task, record videos of the episodes on the first N initial states.
        episodes_per_unit: at most this many episodes per unit of work (a worker loads its policy once
            per unit).
        single_threaded_workers: run each spawned worker's JAX on one thread, so that workers do not
            fight over cores that each would otherwise try to use for inference.
    """

    db: str = "runs/sweep/results.db"
    checkpoints: tuple[str, ...] = ()
    run_dirs: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    init_states: str = "0:50"
    seeds: tuple[int, ...] = (0,)
    settings: tuple[ExecutionSettings, ...] = field(default_factory=lambda: (ExecutionSettings(),))
    workers: int = 2
    backend: Literal["local", "vector", "ray"] = "local"
    num_envs: int = 2
    ray_address: str = ""
    ray_num_cpus: float = 1.0
    ray_num_gpus: float = 0.0
    obs_mapping: str = ""
    blind: bool = False
    blind_seed: int = 0
    video_episodes: int = 0
    episodes_per_unit: int = 25
    single_threaded_workers: bool = False

    def __post_init__(self) -> None:
        if not self.checkpoints and not self.run_dirs:
            raise ValueError("SweepConfig: give checkpoints or run_dirs")
        if not self.suites and not self.tasks:
            raise ValueError("SweepConfig: give suites or tasks")
        if not self.seeds:
            raise ValueError("SweepConfig.seeds: give at least one seed")
        if not self.settings:
            raise ValueError("SweepConfig.settings: give at least one execution setting")
        labels = [s.label() for s in self.settings]
        if len(set(labels)) != len(labels):
            raise ValueError(f"SweepConfig.settings: names must be unique, got {labels}")
        if self.workers < 0 or self.video_episodes < 0 or self.episodes_per_unit < 1:
            raise ValueError("SweepConfig: workers and video_episodes must be >= 0, episodes_per_unit >= 1")
        if self.backend not in ("local", "vector", "ray"):
            raise ValueError(
                f"SweepConfig.backend: unknown backend {self.backend!r}; choose local, vector or ray"
            )
        if self.num_envs < 1:
            raise ValueError(f"SweepConfig.num_envs must be >= 1, got {self.num_envs}")
        if self.ray_num_cpus < 0 or self.ray_num_gpus < 0:
            raise ValueError(
                f"SweepConfig: ray_num_cpus and ray_num_gpus must be >= 0, got {self.ray_num_cpus} "
                f"and {self.ray_num_gpus}"
            )


def load_sweep_toml(path: str | Path, **overrides: Any) -> SweepConfig:
    """Read a sweep TOML file; relative paths in it are relative to the file. Every value is
    type-checked (`robopolicy.typed_config`); errors are one line naming the file and the field."""
    path = Path(path)
    raw = read_toml(path, "sweep config")
    config = from_table(SweepConfig, raw, str(path))
    base = path.parent

    def rel(p: str) -> str:
        return str(base / p) if not (Path(p).is_absolute() or is_remote(p)) else p

    values: dict[str, Any] = {
        "checkpoints": tuple(rel(p) for p in config.checkpoints),
        "run_dirs": tuple(rel(p) for p in config.run_dirs),
        **({"db": rel(config.db)} if "db" in raw else {}),
        **{k: v for k, v in overrides.items() if v is not None},
    }
    try:
        return replace(config, **values)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: {e}") from None
