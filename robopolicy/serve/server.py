"""`robopolicy serve`: a trained policy behind a websocket, speaking openpi's policy-server protocol.

On connecting, a client receives the server's metadata (one binary msgpack message: the policy's
identity, cameras, image size, state and action sizes, execution settings and observation mapping);
then each binary request (a map of observation keys, see `robopolicy.serve.requests`) gets one binary
reply {"actions": float32 [m, action_dim], "step", "planned", "server_timing"}, or, when it cannot be
used, one text message saying why; the connection and the server stay up either way, as openpi's
client expects (it raises the text as an error). No pickle anywhere: msgpack with plain arrays only.

Each connection holds one episode's state (`robopolicy.serve.sessions`); up to `max_clients` at once.
Requests are decoded on the event loop; the policy runs on one inference thread, which answers every
request that is waiting when it becomes free with one batched call. `GET /healthz` on the same port
answers 200 with the server's load. A shared token, when set, is required on every websocket
connection (`Authorization: Api-Key TOKEN`, openpi's header). SIGINT or SIGTERM stops the server, which
then prints the latency percentiles of the requests it answered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jax
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from robopolicy.client.policy_client import TOKEN_ENV
from robopolicy.client.wire import packb
from robopolicy.data.obs_mapping import ObsMapping, load_obs_mapping
from robopolicy.errors import UserError
from robopolicy.serve.requests import BadRequest, Request, parse_request
from robopolicy.serve.serve_config import ServeConfig
from robopolicy.serve.sessions import Reply, Session, Sessions
from robopolicy.train.loaded_policy import LoadedPolicy, load_policy

PROTOCOL_VERSION = 1
_SERVER_FULL = 1013  # websocket close code "try again later"


def policy_hash(policy: LoadedPolicy, config: ServeConfig) -> str:
    """A fingerprint of what answers requests: weights, policy config, statistics, execution settings."""
    digest = hashlib.sha256()
    described = {
        "config": dataclasses.asdict(policy.config),
        "stats": policy.stats.to_dict(),
        "execution": config.execution.identity(),
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for leaf in jax.tree.leaves(policy.params):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()[:16]


def server_metadata(policy: LoadedPolicy, mapping: ObsMapping, config: ServeConfig) -> dict[str, Any]:
    """What a client receives on connecting (docs/deploy.md lists the fields)."""
    cfg = policy.config
    return {
        "server": "robopolicy",
        "protocol": PROTOCOL_VERSION,
        "policy": str(Path(policy.where).resolve()),
        "step": policy.step,
        "policy_hash": policy_hash(policy, config),
        "task": str(policy.meta.get("task", "")),
        "instruction": str(policy.meta.get("instruction", "")),
        "cameras": list(cfg.cameras),
        "image_size": cfg.image_size,
        "state_dim": cfg.state_dim,
        "action_dim": cfg.action_dim,
        "obs_horizon": cfg.obs_horizon,
        "action_horizon": cfg.action_horizon,
        "frame_stride": cfg.frame_stride,
        "execution": config.execution.to_dict(),
        "obs_mapping": mapping.to_table(),
        "max_message_bytes": int(config.max_message_mb * 2**20),
        "max_image_side": config.max_image_side,
    }


class Latencies:
    """Per-request latencies and outcomes; percentiles for the shutdown summary, JSON lines to a log."""

    def __init__(self, log_path: str = "") -> None:
        self.seconds: list[float] = []
        self.batches: list[int] = []
        self.errors = 0
        # Open for the server's lifetime (closed by `close`), so each request costs one write.
        self._log = Path(log_path).open("a") if log_path else None  # noqa: SIM115

    def add(self, seconds: float, record: dict[str, Any]) -> None:
        self.seconds.append(seconds)
        if record.get("error"):
            self.errors += 1
        if record.get("batch"):
            self.batches.append(record["batch"])
        if self._log is not None:
            self._log.write(json.dumps({"time": time.time(), "latency_ms": seconds * 1e3, **record}) + "\n")
            self._log.flush()

    def summary(self) -> dict[str, Any]:
        ms = np.asarray(self.seconds) * 1e3
        percentiles = (
            {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)} if len(ms) else {}
        )
        return {
            "requests": len(ms),
            "errors": self.errors,
            "latency_ms": {**percentiles, **({"max": round(float(ms.max()), 3)} if len(ms) else {})},
            "batch": {
                "mean": round(float(np.mean(self.batches)), 3) if self.batches else 0.0,
                "max": max(self.batches, default=0),
            },
        }

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


@dataclass
class _Work:
    """A request waiting for (or in) a policy call, and where its encoded reply goes."""

    session: Session
    request: Request
    future: asyncio.Future[tuple[bytes | str, dict[str, Any]]]
    received: float = field(default_factory=time.perf_counter)


def _error(message: str) -> str:
    return f"robopolicy server: {message}"


class PolicyServer:
    """The server of one loaded policy; `run` serves until `stop` (or SIGINT/SIGTERM with signals on)."""

    def __init__(
        self, policy: LoadedPolicy, mapping: ObsMapping, config: ServeConfig, token: str = ""
    ) -> None:
        self.policy, self.mapping, self.config, self.token = policy, mapping, config, token
        self.sessions = Sessions(policy, config.execution, config.max_clients, config.seed)
        self.metadata = server_metadata(policy, mapping, config)
        self._metadata_message = packb(self.metadata)
        self.latencies = Latencies(config.request_log)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="policy")
        self._pending: list[_Work] = []
        self._wake: asyncio.Event | None = None
        self._busy: dict[int, asyncio.Future[Any]] = {}  # session slot → its work in flight
        self._stop: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = 0

    def stop(self) -> None:
        """Stop serving (from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))

    async def run(self, on_ready: Callable[[str], None], handle_signals: bool = False) -> None:
        """Compile the policy, listen, call `on_ready(uri)`, serve until stopped; then close every connection."""
        loop = self._loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._wake = asyncio.Event()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        try:
            await loop.run_in_executor(self._executor, self.sessions.warm_up)
            logging.getLogger("websockets").setLevel(logging.CRITICAL)  # bad handshakes: the clients' problem
            try:
                server = await serve(
                    self._handle,
                    self.config.host,
                    self.config.port,
                    process_request=self._process_request,
                    max_size=int(self.config.max_message_mb * 2**20),
                    compression=None,
                )
            except OSError as e:
                where = f"--host {self.config.host} --port {self.config.port}"
                raise UserError(f"{where}: cannot listen there ({e.strerror or e})") from None
            inference = asyncio.create_task(self._infer_loop())
            try:
                host, port = next(iter(server.sockets)).getsockname()[:2]
                on_ready(f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}")
                await self._stop
            finally:
                server.close()
                await server.wait_closed()
                inference.cancel()
        finally:
            self._executor.shutdown(wait=True)
            self.latencies.close()

    def _process_request(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        """Answer /healthz; refuse a websocket handshake without the token."""
        if request.path.split("?", 1)[0] == "/healthz":
            load = {"status": "ok", "clients": self._connected, "max_clients": self.config.max_clients}
            return connection.respond(HTTPStatus.OK, json.dumps(load) + "\n")
        if self.token:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, f"Api-Key {self.token}".encode()):
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED, "missing or wrong token (send Authorization: Api-Key TOKEN)\n"
                )
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        host, port = connection.remote_address[:2]
        client = f"{host}:{port}"
        self._connected += 1
        session: Session | None = None
        try:
            await connection.send(self._metadata_message)
            async for message in connection:
                t0 = time.perf_counter()
                if session is None:
                    session = self.sessions.open()
                    if session is None:
                        reason = f"server full: {self.config.max_clients} clients connected"
                        await connection.send(_error(reason))
                        await connection.close(_SERVER_FULL, reason)
                        return
                    _say(f"client {client}: episode state on slot {session.slot}")
                reply, record = await self._answer(session, message)
                await connection.send(reply)
                self.latencies.add(
                    time.perf_counter() - t0, {"client": client, "slot": session.slot, **record}
                )
        except ConnectionClosed:
            pass
        finally:
            self._connected -= 1
            if session is not None:
                busy = self._busy.get(session.slot)
                if busy is not None:
                    await asyncio.wait([busy])
                self.sessions.close(session)
                _say(f"client {client}: disconnected")

    async def _answer(self, session: Session, message: bytes | str) -> tuple[bytes | str, dict[str, Any]]:
        """The reply to one message (an error text for a bad one) and its log record."""
        if isinstance(message, str):
            return _error("requests must be binary msgpack messages, not text"), {"error": "text message"}
        try:
            request = parse_request(message, self.mapping, self.policy.config, self.config.max_image_side)
        except BadRequest as e:
            return _error(f"bad request: {e}"), {"error": f"bad request: {e}"}
        busy = self._busy.get(session.slot)
        if busy is not None:  # an earlier request of this connection that timed out is still running
            await asyncio.wait([busy])
        assert self._loop is not None and self._wake is not None
        work = _Work(session, request, self._loop.create_future())
        self._busy[session.slot] = work.future
        work.future.add_done_callback(lambda _: self._busy.pop(session.slot, None))
        self._pending.append(work)
        self._wake.set()
        done, _ = await asyncio.wait([work.future], timeout=self.config.request_timeout_s)
        if done:
            return work.future.result()
        # The call goes on; whatever it does to the episode, the next request starts a new one.
        work.future.add_done_callback(lambda _: setattr(session, "started", False))
        seconds = self.config.request_timeout_s
        message = f"request timed out after {seconds} s; the next request starts a new episode"
        return _error(message), {"error": "timeout"}

    async def _infer_loop(self) -> None:
        """Answer the waiting requests, all at once, whenever the inference thread is free."""
        assert self._loop is not None and self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                results = await self._loop.run_in_executor(self._executor, self._step, batch)
                for work, result in zip(batch, results, strict=True):
                    work.future.set_result(result)

    def _step(self, batch: list[_Work]) -> list[tuple[bytes | str, dict[str, Any]]]:
        """On the inference thread: one policy call for the batch, and each reply encoded."""
        t0 = time.perf_counter()
        try:
            replies: list[Reply | BadRequest] = self.sessions.step([(w.session, w.request) for w in batch])
        except Exception as e:
            traceback.print_exc()
            message = (
                f"the policy call failed ({type(e).__name__}: {e}); the next request starts a new episode"
            )
            return [(_error(message), {"error": "policy call failed", "batch": len(batch)})] * len(batch)
        infer_ms = (time.perf_counter() - t0) * 1e3
        out: list[tuple[bytes | str, dict[str, Any]]] = []
        for work, reply in zip(batch, replies, strict=True):
            record: dict[str, Any] = {"batch": len(batch), "infer_ms": round(infer_ms, 3)}
            if isinstance(reply, BadRequest):
                out.append((_error(f"bad request: {reply}"), {**record, "error": f"bad request: {reply}"}))
            elif not np.isfinite(reply.actions).all():
                work.session.started = False
                message = "the policy returned non-finite actions; the next request starts a new episode"
                out.append((_error(message), {**record, "error": "non-finite actions"}))
            else:
                queued_ms = (t0 - work.received) * 1e3
                timing = {"infer_ms": infer_ms, "queue_ms": queued_ms, "batch": len(batch)}
                message = packb(
                    {
                        "actions": reply.actions,
                        "step": reply.step,
                        "planned": reply.planned,
                        "server_timing": timing,
                    }
                )
                out.append((message, {**record, "step": reply.step, "planned": reply.planned}))
        return out


def _say(message: str) -> None:
    print(f"robopolicy serve: {message}", file=sys.stderr, flush=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_server(config: ServeConfig) -> PolicyServer:
    """The server of `config`'s policy and mapping (UserError on a bad policy path or mapping)."""
    policy = load_policy(config.policy)
    try:
        mapping = load_obs_mapping(config.obs_mapping).for_cameras(policy.config.cameras)
    except ValueError as e:
        raise UserError(f"--obs-mapping: {e}") from None
    token = config.token or os.environ.get(TOKEN_ENV, "")
    return PolicyServer(policy, mapping, config, token)


def serve_policy(config: ServeConfig) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM; returns the latency summary (also printed, as one JSON line)."""
    server = load_server(config)
    if not server.token and not _is_loopback(config.host):
        _say(f"warning: listening on {config.host} without a token; anyone who can reach it can use it")

    def ready(uri: str) -> None:
        print(
            f"serving {server.policy.where} on {uri} (observation mapping '{server.mapping.name}', "
            f"at most {config.max_clients} clients)",
            flush=True,
        )

    asyncio.run(server.run(ready, handle_signals=True))
    summary = server.latencies.summary()
    print(json.dumps({"event": "shutdown", **summary}), flush=True)
    return summary
