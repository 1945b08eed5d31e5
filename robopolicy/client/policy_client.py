"""A client of a policy server (robopolicy's, or any openpi-compatible one): observations in, actions out.

    from robopolicy.client import PolicyClient

    with PolicyClient("ws://127.0.0.1:8000") as client:
        client.reset(seed=0)                      # the next request starts an episode
        reply = client.infer({"agentview": image, "wrist": wrist_image, "state": state})
        action = reply["actions"][0]               # [H, action_dim], this step's action first

The connection receives the server's metadata first (`client.metadata`); then each `infer` sends one
binary msgpack message and receives one. A text message from the server is an error reply: `infer`
raises `ServerError` with it, and the connection stays usable.

To a robopolicy server a connection is an episode's state (history, executed actions); `reset()`
makes the next request start a new episode (with a seed, its sampling noise is a function of the
seed alone), and `executed_actions` says which actions the robot ran since the previous reply when
that was not all of them (see docs/deploy.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection, connect

from robopolicy.client.wire import packb, unpackb

TOKEN_ENV = "ROBOPOLICY_TOKEN"  # the shared token, when none is passed


class ServerError(RuntimeError):
    """The server answered a request with an error message."""


class PolicyClient:
    """One connection to a policy server at `uri` (ws://HOST:PORT).

    Args:
        uri: the server's address.
        token: the server's shared token, sent as `Authorization: Api-Key TOKEN` (openpi's header);
            None reads $ROBOPOLICY_TOKEN, "" sends none.
        open_timeout: seconds to wait for the connection and the metadata.
        reply_timeout: seconds to wait for each reply (None: no limit).
    """

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        open_timeout: float = 30.0,
        reply_timeout: float | None = None,
    ) -> None:
        self.uri = uri
        token = os.environ.get(TOKEN_ENV, "") if token is None else token
        headers = {"Authorization": f"Api-Key {token}"} if token else None
        self._reply_timeout = reply_timeout
        self._ws: ClientConnection = connect(
            uri, compression=None, max_size=None, additional_headers=headers, open_timeout=open_timeout
        )
        try:
            metadata = unpackb(self._receive(open_timeout))
        except BaseException:
            self._ws.close()
            raise
        self.metadata: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        self._start: dict[str, Any] | None = None

    def reset(self, seed: int | None = None) -> None:
        """Make the next request start a new episode, with sampling seed `seed` (None: the server's)."""
        self._start = {"reset": True, **({"seed": int(seed)} if seed is not None else {})}

    def send(self, obs: Mapping[str, Any], executed_actions: np.ndarray | None = None) -> None:
        """Send one request (the observation and, after a reset, the episode start); `receive` gets its reply."""
        request = dict(obs)
        if self._start is not None:
            request.update(self._start)
            self._start = None
        if executed_actions is not None:
            request["executed_actions"] = np.asarray(executed_actions, np.float32).reshape(
                -1, np.shape(executed_actions)[-1]
            )
        self._ws.send(packb(request))

    def receive(self) -> dict[str, Any]:
        """The reply to the last request sent: a dict with at least "actions" [H, action_dim]."""
        reply = self._receive(self._reply_timeout)
        if isinstance(reply, str):
            raise ServerError(reply)
        value = unpackb(reply)
        if not isinstance(value, dict):
            raise ServerError(f"{self.uri}: the reply is a {type(value).__name__}, not a map")
        return value

    def infer(self, obs: Mapping[str, Any], executed_actions: np.ndarray | None = None) -> dict[str, Any]:
        """Send one request and wait for its reply (`send` then `receive`)."""
        self.send(obs, executed_actions)
        return self.receive()

    def _receive(self, timeout: float | None) -> str | bytes:
        return self._ws.recv(timeout=timeout)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
