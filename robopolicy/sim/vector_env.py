"""`make_vector(task_or_tasks, num_envs)`: a `gymnasium.vector.VectorEnv` of worker processes.

Each env runs a `TabletopGymEnv` in its own worker process (`robopolicy.sim.worker_process`): a fresh
interpreter, never a fork, created lazily on the first reset. MuJoCo models and renderers exist only
in the workers. Envs may run different tasks (e.g. one per task of a suite); they share image size,
cameras and the other env options, so that observations batch.

Observations come back as fresh arrays {camera: uint8 (N, H, W, 3), "state": float32 (N, S)}. With
`shared_memory=True` (default) workers write them into one shared buffer and only small JSON
messages cross the sockets; with False they travel through the sockets as bytes.

Resets. `reset(seed=s)` seeds env i with s + i (`seed=[...]` gives one per env); a seeded env's
later unseeded resets are reproducible too. Options, each a single value for all envs or a sequence
of one per env (None: no choice for that env): `init_state_id` (fixed evaluation state of the env's
task), `init_state` ((D,) or (N, D) float64); `reset_mask` (bool (N,)) resets only some envs.

Autoreset ("autoreset_mode" in metadata):
- NEXT_STEP (default, gymnasium's): the step after an env's episode ends resets that env instead of
  stepping it (its action is ignored); that step returns the reset observation, reward 0,
  terminated = truncated = False and the reset info. The new episode's layout is drawn from the env's
  seeded generator; use DISABLED to choose fixed initial states.
- DISABLED: nothing resets by itself. An env whose episode ended is not stepped again until it is
  reset (with `reset_mask`): its observation stays the last one, its reward is 0, its terminated and
  truncated flags repeat those that ended the episode and its info is empty (masked out). A loop can
  thus step until every env is done, then reset them with the next initial states.

Worker crashes. If a worker process dies, or is silent for `timeout_s` during a command (a new
worker has `start_timeout_s` to load), its episode ends as failed: truncated=True, reward 0, an
all-zero observation and info with success=False, `failure_reason` and `worker_crash` (which worker
and pid, how it died, its last output line). The worker is restarted at once and the other envs go
on; with NEXT_STEP the next step resets the env on the new worker. Every crash is also appended to
`crashes` and logged. A crash during reset is retried once on a fresh worker. A Python exception
inside an env (e.g. a bad action) is not a crash: it is raised here as `WorkerError` with the
worker's traceback, after every other env's reply has been read, and the workers stay up.

Interruptions. Workers ignore SIGINT, so Ctrl-C stops only the parent. A step or reset cut short
(e.g. by KeyboardInterrupt in a notebook) leaves the episodes unknown: step() then refuses until
reset() resets every env, and each worker left with an unread reply or a half-read message is
replaced by a fresh one first.

`close()` (also via `with`, garbage collection or interpreter exit) stops every worker and reaps it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from robopolicy.sim.config_json import config_to_json
from robopolicy.sim.env import EnvConfig
from robopolicy.sim.gym_env import action_space, env_config, observation_space
from robopolicy.sim.worker_process import WorkerDied, WorkerProcess
from robopolicy.sim.worker_protocol import ObsLayout
from robopolicy.tasks.spec import TaskSpecError, task_file

_log = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 300.0  # per command
DEFAULT_START_TIMEOUT_S = 300.0  # a new worker's imports and model build
_RESET_OPTIONS = ("init_state", "init_state_id", "reset_mask")


class WorkerError(RuntimeError):
    """A Python exception raised inside a worker's env; the message carries the worker's traceback."""


@dataclass(frozen=True)
class WorkerCrash:
    """A worker process that died: env index, its pid, what it was doing, why, and its successor."""

    env_index: int
    pid: int | None
    command: str
    reason: str
    new_pid: int | None


def _stop_all(workers: list[WorkerProcess | None]) -> None:
    for worker in workers:
        if worker is not None:
            worker.stop()


def _per_env(value: Any, num_envs: int, name: str, entry_ndim: int) -> list[Any]:
    """A reset option as one entry per env: one value (of `entry_ndim` dims) is repeated to all envs;
    a sequence of num_envs values is split.
    """
    if value is None:
        return [None] * num_envs
    if isinstance(value, (list, tuple)) or np.ndim(value) == entry_ndim + 1:
        if len(value) != num_envs:
            raise ValueError(f"reset option '{name}' has {len(value)} entries for {num_envs} envs")
        return list(value)
    return [value] * num_envs


class TabletopVectorEnv(VectorEnv):
    """N `TabletopGymEnv`s in worker processes; see the module docstring for the semantics."""

    def __init__(
        self,
        configs: Sequence[EnvConfig],
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        shared_memory: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        if not configs:
            raise ValueError("a vector env needs at least one env")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            raise ValueError("autoreset_mode SAME_STEP is not supported; use NEXT_STEP or DISABLED")
        first = configs[0]
        for c in configs[1:]:
            # Observations must batch, so everything but the task is shared.
            if c.image_size != first.image_size or c.cameras != first.cameras or c.render != first.render:
                raise ValueError("all envs of a vector env must share image_size, cameras and render")
        self._configs = tuple(configs)
        self.num_envs = len(configs)
        self.metadata = {"autoreset_mode": self.autoreset_mode, "render_modes": []}
        self.single_observation_space = observation_space(first)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._shared_memory = shared_memory
        self._layout = ObsLayout.from_space(self.single_observation_space, self.num_envs)
        self._obs_fd = -1
        self._buffer: mmap.mmap | bytearray | None = None
        self._views: dict[str, np.ndarray] = {}
        self._workers: list[WorkerProcess | None] = [None] * self.num_envs
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)
        self._ended = np.zeros(self.num_envs, dtype=bool)  # episode over, not reset yet
        self._ended_terminated = np.zeros(self.num_envs, dtype=bool)
        self._ended_truncated = np.zeros(self.num_envs, dtype=bool)
        self._was_reset = np.zeros(self.num_envs, dtype=bool)
        self.crashes: list[WorkerCrash] = []
        self._checked_pids: set[int] = set()
        self._interrupted = False  # a step or reset did not finish (e.g. Ctrl-C): episodes are unknown

    # ----- workers -----
    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(c.task for c in self._configs)

    @property
    def worker_pids(self) -> tuple[int | None, ...]:
        """Process ids of the workers (None for one not started yet)."""
        return tuple(None if w is None else w.pid for w in self._workers)

    @property
    def instructions(self) -> tuple[str, ...]:
        """Each env's language instruction (starts the workers if needed)."""
        return tuple(w.hello()["instruction"] for w in self._started_workers())

    @property
    def max_steps(self) -> tuple[int, ...]:
        """Each env's step cap (starts the workers if needed)."""
        return tuple(int(w.hello()["max_steps"]) for w in self._started_workers())

    def _allocate_buffer(self) -> None:
        if self._buffer is not None:
            return
        if self._shared_memory:
            if hasattr(os, "memfd_create"):
                self._obs_fd = os.memfd_create("robopolicy-obs")
            else:
                with tempfile.TemporaryFile() as f:
                    self._obs_fd = os.dup(f.fileno())
            os.ftruncate(self._obs_fd, self._layout.nbytes)
            self._buffer = mmap.mmap(self._obs_fd, self._layout.nbytes)
            self._views = self._layout.batched_views(memoryview(self._buffer))
        else:
            self._buffer = bytearray(self._layout.nbytes)
            self._views = self._layout.batched_views(self._buffer)

    def _worker(self, i: int) -> WorkerProcess:
        worker = self._workers[i]
        if worker is None:
            if self.closed:
                raise RuntimeError("the vector env is closed")
            self._allocate_buffer()
            init = {
                "cmd": "init",
                "config": config_to_json(self._configs[i]),
                "slot": i,
                "num_slots": self.num_envs,
            }
            worker = WorkerProcess(i, init, self._obs_fd, self._timeout_s, self._start_timeout_s)
            worker.start()
            self._workers[i] = worker
        return worker

    def _started_workers(self) -> list[WorkerProcess]:
        workers = [self._worker(i) for i in range(self.num_envs)]
        for w in workers:
            self._check_hello(w)
        return workers

    def _check_hello(self, worker: WorkerProcess) -> None:
        """Wait for a new worker to be ready and check that its observations batch with ours (once)."""
        hello = worker.hello()
        if hello["pid"] in self._checked_pids:
            return
        if hello["layout"] != self._layout.describe():
            raise RuntimeError(
                f"worker {worker.index} observations {hello['layout']} differ from the vector env's "
                f"{self._layout.describe()}"
            )
        self._checked_pids.add(hello["pid"])

    def _record_crash(self, i: int, command: str, err: WorkerDied) -> WorkerCrash:
        worker = self._worker(i)
        old_pid = worker.pid
        worker.restart()
        crash = WorkerCrash(i, old_pid, command, str(err), worker.pid)
        self.crashes.append(crash)
        # Log the text, not the exception: its traceback would keep step()'s frame (and views) alive.
        _log.warning("%s during %s; restarted as pid %s", crash.reason, command, worker.pid)
        return crash

    # ----- the VectorEnv API -----
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.closed:
            raise RuntimeError("the vector env is closed")
        n = self.num_envs
        seeds = self._seeds(seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: {list(_RESET_OPTIONS)}")
        mask = np.ones(n, dtype=bool)
        if options.get("reset_mask") is not None:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"reset_mask must be a bool array of shape ({n},) with at least one True")
        if self._interrupted and not mask.all():
            raise RuntimeError("a previous step or reset was interrupted; reset every env (no reset_mask)")
        state_ids = _per_env(options.get("init_state_id"), n, "init_state_id", 0)
        states = _per_env(options.get("init_state"), n, "init_state", 1)
        requests = {
            i: self._reset_request(seeds[i], state_ids[i], states[i]) for i in map(int, np.flatnonzero(mask))
        }
        infos: dict[str, Any] = {}
        self._interrupted = True
        for i, (header, payload) in requests.items():
            with contextlib.suppress(WorkerDied):  # a dead worker is found, and replaced, below
                self._worker(i).send(header, payload)
        errors: list[str] = []
        for i, (header, payload) in requests.items():
            try:
                reply = self._reset_reply(i)
            except WorkerDied as err:
                crash = self._record_crash(i, "reset", err)
                self._worker(i).send(header, payload)
                reply = self._reset_reply(i)
                if reply.get("ok"):
                    reply["info"]["worker_crash"] = crash.reason
            if reply.get("ok"):
                infos = self._add_info(infos, reply["info"], i)
            else:
                errors.append(self._error_text(i, reply))
        self._interrupted = False
        if errors:  # raised only now, so that every worker's reply has been read
            raise WorkerError("\n".join(errors))
        self._ended[mask] = False
        self._was_reset[mask] = True
        return self._observations(), infos

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = [None if s is None else int(s) for s in seed]
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        return seeds

    @staticmethod
    def _reset_request(seed: int | None, state_id: Any, state: Any) -> tuple[dict[str, Any], bytes]:
        header: dict[str, Any] = {"cmd": "reset", "seed": seed, "options": {}}
        payload = b""
        if state is not None:
            header["init_state"] = True
            payload = np.ascontiguousarray(state, dtype=np.float64).tobytes()
        if state_id is not None:
            header["options"]["init_state_id"] = int(state_id)
        return header, payload

    def _reset_reply(self, i: int) -> dict[str, Any]:
        worker = self._worker(i)
        self._check_hello(worker)
        header, payload = worker.recv()
        if header.get("ok"):
            self._store_obs(i, payload)
        return header

    def _error_text(self, i: int, header: dict[str, Any]) -> str:
        return f"env {i} ({self._configs[i].task}): {header.get('error')}\n{header.get('traceback', '')}"

    def _store_obs(self, i: int, payload: bytes) -> None:
        if not self._shared_memory:
            self._layout.unpack_into_slot(self._views, i, payload)

    def _observations(self) -> dict[str, np.ndarray]:
        return {key: view.copy() for key, view in self._views.items()}

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.closed:
            raise RuntimeError("the vector env is closed")
        if not self._was_reset.all():
            raise RuntimeError("call reset() on every env before step()")
        if self._interrupted:
            raise RuntimeError("a previous step or reset was interrupted; call reset() before step()")
        n = self.num_envs
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (n, self.single_action_space.shape[0]):
            raise ValueError(
                f"actions must have shape {(n, self.single_action_space.shape[0])}, got {actions.shape}"
            )
        autoreset = self.autoreset_mode == AutoresetMode.NEXT_STEP
        commands: dict[int, str] = {}
        self._interrupted = True
        for i in range(n):
            if self._ended[i] and not autoreset:
                continue  # DISABLED: an ended episode waits for an explicit reset
            if self._ended[i]:
                commands[i] = "reset"
                self._send(i, {"cmd": "reset", "seed": None, "options": {}})
            else:
                commands[i] = "step"
                self._send(i, {"cmd": "step"}, actions[i].tobytes())
        rewards = np.zeros(n, dtype=np.float64)
        terminated = self._ended_terminated & self._ended
        truncated = self._ended_truncated & self._ended
        terminated[list(commands)] = False
        truncated[list(commands)] = False
        infos: dict[str, Any] = {}
        errors: list[str] = []
        for i, command in commands.items():
            try:
                header, payload = self._worker(i).recv()
            except WorkerDied as err:
                crash = self._record_crash(i, command, err)
                for view in self._views.values():
                    view[i] = 0
                truncated[i] = True
                info = {
                    "success": False,
                    "sim_error": None,
                    "failure_reason": crash.reason,
                    "worker_crash": crash.reason,
                }
                infos = self._add_info(infos, info, i)
                continue
            if not header.get("ok"):
                errors.append(self._error_text(i, header))
                continue
            self._store_obs(i, payload)
            if command == "step":
                rewards[i] = header["reward"]
                terminated[i] = header["terminated"]
                truncated[i] = header["truncated"]
            infos = self._add_info(infos, header["info"], i)
        self._interrupted = False
        if errors:
            raise WorkerError("\n".join(errors))
        stepped = np.zeros(n, dtype=bool)
        stepped[list(commands)] = True
        done = stepped & (terminated | truncated)
        self._ended_terminated[stepped] = terminated[stepped]
        self._ended_truncated[stepped] = truncated[stepped]
        self._ended[stepped] = done[stepped]
        return self._observations(), rewards, terminated, truncated, infos

    def get_states(self) -> list[np.ndarray]:
        """Each env's (D,) float64 physics state (`TabletopEnv.get_state`), e.g. to record or replay it.

        D may differ between tasks, hence a list. Raises WorkerDied if a worker is gone.
        """
        if not self._was_reset.all():
            raise RuntimeError("call reset() on every env before get_states()")
        workers = self._started_workers()
        for worker in workers:
            worker.send({"cmd": "get_state"})
        states, errors = [], []
        for i, worker in enumerate(workers):
            header, payload = worker.recv()
            if not header.get("ok"):
                errors.append(self._error_text(i, header))
            states.append(np.frombuffer(payload, np.float64).copy())
        if errors:
            raise WorkerError("\n".join(errors))
        return states

    def _send(self, i: int, header: dict[str, Any], payload: bytes = b"") -> None:
        worker = self._worker(i)
        try:
            self._check_hello(worker)
            worker.send(header, payload)
        except WorkerDied:
            # Discovered on sending: the reply read in step() reports it as this command's crash.
            return

    def close_extras(self, **kwargs: Any) -> None:
        self._finalizer()
        self._workers[:] = [None] * self.num_envs
        self._views = {}
        if isinstance(self._buffer, mmap.mmap):
            # If an outside reference to a view remains, the mapping goes when that reference does.
            with contextlib.suppress(BufferError):
                self._buffer.close()
        self._buffer = None
        if self._obs_fd >= 0:
            os.close(self._obs_fd)
            self._obs_fd = -1

    def __enter__(self) -> TabletopVectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_vector(
    task_or_tasks: str | Sequence[str] | None = None,
    num_envs: int | None = None,
    *,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    shared_memory: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    **env_kwargs: Any,
) -> TabletopVectorEnv:
    """A vector env of `num_envs` worker processes, all on one task or one task per env.

    `env_kwargs` are TabletopEnv's (image_size, cameras, render, render_options, controller) or
    `config=EnvConfig(...)`, shared by all envs; with no task given, the config's task (default
    cube_on_plate). No process starts before the first reset.
    """
    if task_or_tasks is None or isinstance(task_or_tasks, str):
        tasks: list[str | None] = [task_or_tasks] * (1 if num_envs is None else num_envs)
    else:
        tasks = list(task_or_tasks)
        if num_envs is not None and num_envs != len(tasks):
            raise ValueError(f"num_envs={num_envs} but {len(tasks)} tasks were given")
    if not tasks:
        raise ValueError("num_envs must be at least 1")
    configs = [env_config(task, **env_kwargs) for task in tasks]
    for task in dict.fromkeys(c.task for c in configs):
        # Only existence is checked here: specs are parsed in the workers, and an invalid one raises
        # the same one-line UserError there (at the first reset) as it would in one process.
        path = task_file(task)  # an unknown task name fails here, naming the folders searched
        if not path.is_file():
            raise TaskSpecError(f"{path}: task spec file not found")
    return TabletopVectorEnv(
        configs,
        autoreset_mode=autoreset_mode,
        shared_memory=shared_memory,
        timeout_s=timeout_s,
        start_timeout_s=start_timeout_s,
    )
