"""Configuration of `robopolicy eval`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from robopolicy.eval.execution import ExecutionSettings


def parse_index_range(spec: str, total: int) -> list[int]:
    """'0:50' → [0, …, 49]; '3' → [3]; '0:10,20:30' → both ranges. Bounds are checked against `total`."""
    ids: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if ":" in part:
            lo_s, hi_s = part.split(":", 1)
            lo, hi = int(lo_s or 0), int(hi_s or total)
            ids.extend(range(lo, hi))
        elif part:
            ids.append(int(part))
    if not ids:
        raise ValueError(f"init state selection {spec!r} selects nothing")
    bad = [i for i in ids if not 0 <= i < total]
    if bad:
        raise ValueError(
            f"init state {bad[0]} out of range: the task has {total} fixed initial states (0..{total - 1})"
        )
    return ids


@dataclass(frozen=True)
class EvalConfig:
    """Evaluate a checkpoint on a task's fixed initial states (trial i uses initial state i).

    Attributes:
        checkpoint: a training run folder, its `checkpoints/` folder, or one step folder in it.
        task: task to evaluate on; empty means the task the policy was trained on.
        init_states: which fixed initial states, e.g. '0:50' or '0:10,40:50'.
        out: where results.json and the video go; empty means `<run>/eval`.
        video_episodes: how many of the first episodes go into rollouts.mp4 (0 for none).
        max_steps: step cap per episode; 0 means the task's own cap.
        seed: seeds the policy's sampling noise.
        policy: a checkpoint (run, checkpoints or step folder) to evaluate into a results database,
            or a policy server, ws://HOST:PORT (`robopolicy serve`, or any openpi-compatible server);
            setting this, --suite, --tasks, --seeds or --db stores every episode in --db, resumably.
        suite: evaluate every task of this suite (neither suite nor tasks: the policy's own task).
        tasks: evaluate these tasks (with --suite: in addition to its tasks); 'TASK+oracle' keeps a
            memory task's cue lit all episode and is stored under that name (docs/tasks.md).
        seeds: sampling seeds; each (initial state, seed) pair is one episode. Empty: --seed.
        db: the SQLite results file; empty means `<run>/eval/results.db` (for a policy server:
            runs/remote_eval/results.db).
        backend: how stored evaluation runs: "vector" (default) runs the policy in this process and
            batches its inference over `num_envs` env worker processes (`robopolicy.sim.make_vector`),
            with a suite's tasks spread over them; "local" runs `workers` processes that each load the
            policy and run episodes one at a time (0 workers: all in this process).
        num_envs: env worker processes of the vector backend.
        workers: worker processes of the local backend (0: in this process).
        obs_mapping: for a policy server that names none in its metadata (openpi's), the observation
            mapping requests are sent through, e.g. "openpi_libero" (see docs/deploy.md).
        execution: how actions are executed (chunking, replanning, ensembling, settle steps, caps); a
            robopolicy policy server uses its own chunking, ensembling and self-verification.
    """

    checkpoint: str = "runs/train"
    task: str = ""
    init_states: str = "0:50"
    out: str = ""
    video_episodes: int = 4
    max_steps: int = 0
    seed: int = 0
    policy: str = ""
    suite: str = ""
    tasks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    db: str = ""
    backend: Literal["vector", "local"] = "vector"
    num_envs: int = 2
    workers: int = 0
    obs_mapping: str = ""
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        if self.video_episodes < 0 or self.max_steps < 0:
            raise ValueError("EvalConfig: video_episodes and max_steps must be >= 0")
        if self.workers < 0:
            raise ValueError(f"EvalConfig.workers must be >= 0, got {self.workers}")
        if self.num_envs < 1:
            raise ValueError(f"EvalConfig.num_envs must be >= 1, got {self.num_envs}")

    @property
    def uses_store(self) -> bool:
        """Whether this evaluation writes every episode to a results database."""
        return bool(self.policy or self.suite or self.tasks or self.seeds or self.db)
