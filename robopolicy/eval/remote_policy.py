"""Remote policies: a policy server at ws://HOST:PORT evaluated like a checkpoint, through the one
episode loop with `RemoteSelector` in place of `ActionSelector`.

A robopolicy server (its metadata says `"server": "robopolicy"`) is asked at every env step, with
the action executed at the previous step (`executed_actions`) and the episode's seed at its start, so
the episodes are exactly those of evaluating the same policy in process: same initial states, seeds
and actions. Its metadata names the observation mapping, cameras and image size; the execution
settings (chunking, ensembling, self-verification) are the server's, and the evaluation's own settings
keep only what concerns episodes (settle steps, step caps).

Any other openpi-compatible server is asked like openpi's own clients ask: when the slot's actions
run out, the observation goes out through an observation mapping (`--obs-mapping`, e.g.
openpi_libero) and the first `n_action_steps` actions of the reply (all of them for 0) are executed;
"every_step" executes the first action of each reply.

In the results store a remote policy is the run `URI#<the server's policy>`, at the server's
checkpoint step, with a settings hash that also covers the server's fingerprint (`policy_hash`), so
another policy behind the same address is another run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

from robopolicy.client.episode_log import server_policy_id, server_step
from robopolicy.client.policy_client import PolicyClient, ServerError
from robopolicy.client.wire import WireError
from robopolicy.data.obs_mapping import ObsMapping, load_obs_mapping
from robopolicy.errors import UserError
from robopolicy.eval.execution import NOOP_ACTION, ExecutionSettings

_REACH_ERRORS = (OSError, TimeoutError, WebSocketException, WireError)  # cannot talk to the server
_POLICY_SIDE = ("mode", "n_action_steps", "ensemble_decay", "self_verify_candidates", "verification")
_ACTION_DIM = len(NOOP_ACTION)  # what the envs take
_REPLY_TIMEOUT_S = 300.0  # a server that answers nothing for this long is gone (first calls may compile)


class PolicyUnavailable(UserError):
    """The policy cannot be asked at all (a policy server that is gone or refuses the requests): the
    episode loop stops the run with this message instead of failing episodes the policy never saw."""


def is_remote(policy: str) -> bool:
    """Whether a policy argument names a policy server rather than a checkpoint."""
    return policy.startswith(("ws://", "wss://"))


def _connect(uri: str) -> PolicyClient:
    try:
        return PolicyClient(uri, reply_timeout=_REPLY_TIMEOUT_S)
    except InvalidURI as e:
        raise UserError(f"{uri}: not a websocket address ({e})") from None
    except InvalidHandshake as e:
        raise PolicyUnavailable(f"{uri}: the policy server refused the connection ({e})") from None
    except _REACH_ERRORS as e:
        raise PolicyUnavailable(f"{uri}: cannot reach a policy server ({type(e).__name__}: {e})") from None


@dataclass(frozen=True)
class RemotePolicy:
    """A policy server as the evaluation sees it: its address, metadata and observation mapping."""

    uri: str
    metadata: dict[str, Any]
    mapping: ObsMapping
    image_size: int

    @property
    def ours(self) -> bool:
        """A robopolicy server, which keeps each connection's episode and is asked at every step."""
        return self.metadata.get("server") == "robopolicy"

    @property
    def policy_id(self) -> str:
        """The run's policy in the results store: the address, and the server's policy when it names one."""
        return server_policy_id(self.uri, self.metadata)

    @property
    def step(self) -> int:
        return server_step(self.metadata)

    @property
    def task(self) -> str:
        return str(self.metadata.get("task", ""))

    def settings(self, settings: ExecutionSettings) -> ExecutionSettings:
        """The settings an evaluation of this server runs under: a robopolicy server's execution with
        the evaluation's episode settings; UserError for settings the server cannot follow."""
        if self.ours:
            changed = [f for f in _POLICY_SIDE if getattr(settings, f) != getattr(ExecutionSettings(), f)]
            if changed:
                raise UserError(
                    f"{self.uri}: {', '.join(changed)} are the policy server's execution settings; "
                    "set them with `robopolicy serve --execution.…`"
                )
            server = ExecutionSettings.from_dict(self.metadata.get("execution", {}), f"{self.uri} metadata")
            return replace(
                server,
                name=settings.name,
                settle_steps=settings.settle_steps,
                max_steps=settings.max_steps,
                suite_step_caps=settings.suite_step_caps,
            )
        if settings.mode == "temporal_ensemble" or settings.self_verify_candidates > 1:
            raise UserError(
                f"{self.uri}: a server other than robopolicy's runs only modes chunk and every_step, "
                "without self-verification"
            )
        return settings

    def config_hash(self, settings: ExecutionSettings) -> str:
        """The run's settings hash: `settings` (already `self.settings(...)`) and the server's fingerprint."""
        fingerprint = self.metadata.get("policy_hash") or json.dumps(
            self.metadata, sort_keys=True, default=str
        )
        text = f"{settings.config_hash()}/{fingerprint}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def connect_remote(uri: str, obs_mapping: str = "") -> RemotePolicy:
    """Read a server's metadata (one short connection). `obs_mapping` names the mapping for a server
    that does not send one (a robopolicy server's own always wins)."""
    with _connect(uri) as client:
        metadata = client.metadata
    table = metadata.get("obs_mapping")
    if metadata.get("server") == "robopolicy" and isinstance(table, dict):
        mapping = ObsMapping.from_table(table, f"{uri} metadata")
    elif obs_mapping:
        mapping = load_obs_mapping(obs_mapping)
    else:
        raise UserError(
            f"{uri}: the policy server names no observation mapping; pass --obs-mapping (e.g. openpi_libero)"
        )
    if not mapping.cameras:
        raise UserError(f"{uri}: observation mapping '{mapping.name}' names no camera keys for this server")
    size = metadata.get("image_size") or mapping.image_size
    if not isinstance(size, int) or size < 1:
        raise UserError(
            f"{uri}: neither the server nor observation mapping '{mapping.name}' says which image size to send"
        )
    return RemotePolicy(uri, metadata, mapping, size)


def remote_label(policy_id: str, step: int) -> str:
    """A short name of a remote run: 'host:port@step', with the server's run folder when it names one."""
    uri, _, name = policy_id.partition("#")
    label = urlsplit(uri).netloc
    if name:
        path = PurePosixPath(name)
        label += ":" + (path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name)
    return f"{label}@{step}"


@dataclass
class _Connection:
    """One slot: its connection, its episode's start and instruction, what it executes next."""

    client: PolicyClient | None = None
    seed: int | None = None  # the seed of an episode that starts at the next request
    starting: bool = False
    instruction: str | None = None
    executed: np.ndarray | None = None  # the action executed at the previous step (robopolicy servers)
    queue: deque[np.ndarray] = field(default_factory=deque)  # actions left of the last reply (others)


class RemoteSelector:
    """`ActionSelector`'s interface over `num_slots` connections to one policy server (see the module
    docstring for how each kind of server is asked)."""

    def __init__(self, remote: RemotePolicy, num_slots: int, settings: ExecutionSettings) -> None:
        self.remote = remote
        self.num_slots = num_slots
        self._per_reply = 1 if settings.mode == "every_step" else settings.n_action_steps
        self._slots = [_Connection() for _ in range(num_slots)]
        self.inference_seconds = 0.0
        self.num_calls = 0

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.remote.mapping.cameras.values())

    @property
    def image_size(self) -> int:
        return self.remote.image_size

    def reset(self, slot: int, seed: int | None = None, instruction: str | None = None) -> None:
        s = self._slots[slot]
        s.seed, s.starting, s.executed = seed, True, None
        s.queue.clear()
        if instruction is not None:
            s.instruction = instruction

    def release(self, slot: int) -> None:
        self._slots[slot].executed = None
        self._slots[slot].queue.clear()

    def selection_log(self, slot: int) -> list[dict[str, Any]] | None:
        """None: a policy server keeps its self-verification choices to itself."""
        return None

    def act(self, obs: dict[str, np.ndarray], active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One request per active slot that needs actions, all sent before any reply is read (so the
        server can batch them); the actions [n, A] and each slot's share of the wait."""
        t0 = time.perf_counter()
        rows = [int(i) for i in np.flatnonzero(active)]
        asking = [i for i in rows if self.remote.ours or not self._slots[i].queue]
        for i in asking:
            self._send(i, {k: v[i] for k, v in obs.items()})
        replies: dict[int, np.ndarray] = {}
        failure: Exception | None = None
        for i in asking:  # every reply is read, even after a failure, so no connection falls behind
            try:
                replies[i] = self._receive(i)
            except Exception as e:
                failure = failure or e
        if failure is not None:
            raise failure
        actions = np.zeros((len(active), _ACTION_DIM), np.float32)
        for i in rows:
            s = self._slots[i]
            if i in replies:
                take = 1 if self.remote.ours else (self._per_reply or len(replies[i]))
                s.queue.extend(replies[i][:take])
            actions[i] = s.executed = s.queue.popleft()
        elapsed = time.perf_counter() - t0
        seconds = np.zeros(len(active))
        if asking:
            self.inference_seconds += elapsed
            self.num_calls += 1
            seconds[asking] = elapsed / len(asking)
        return actions, seconds

    def _send(self, i: int, obs: dict[str, np.ndarray]) -> None:
        s = self._slots[i]
        if s.client is None:
            s.client = _connect(self.remote.uri)
        request = self.remote.mapping.request(obs, s.instruction)
        try:
            if self.remote.ours:
                if s.starting:
                    s.client.reset(s.seed)
                s.client.send(request, None if s.starting else s.executed)
            else:
                s.client.send(request)
        except _REACH_ERRORS as e:
            raise PolicyUnavailable(
                f"{self.remote.uri}: lost the policy server ({type(e).__name__}: {e})"
            ) from None
        s.starting = False

    def _receive(self, i: int) -> np.ndarray:
        client = self._slots[i].client
        assert client is not None
        try:
            reply = client.receive()
        except ServerError as e:
            if "bad request" in str(e):  # the server cannot read what this evaluation sends
                raise PolicyUnavailable(f"{self.remote.uri}: {e}") from None
            raise
        except _REACH_ERRORS as e:
            raise PolicyUnavailable(
                f"{self.remote.uri}: lost the policy server ({type(e).__name__}: {e})"
            ) from None
        actions = reply.get("actions")
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"the server's reply holds no actions [H, A] (got {type(actions).__name__})")
        if actions.shape[1] != _ACTION_DIM:
            raise PolicyUnavailable(
                f"{self.remote.uri}: the server's actions have {actions.shape[1]} values; the envs take {_ACTION_DIM}"
            )
        return actions.astype(np.float32)

    def close(self) -> None:
        for s in self._slots:
            if s.client is not None:
                s.client.close()
                s.client = None
