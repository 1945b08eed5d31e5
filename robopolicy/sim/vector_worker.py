"""Worker process of `TabletopVectorEnv`: one `TabletopGymEnv`, driven over a socket.

Started as a fresh interpreter (`python -m robopolicy.sim.vector_worker SOCK_FD OBS_FD`), never
forked, so it inherits no GL context, MuJoCo model or thread state from its parent; the model and
renderer are created here. The parent passes two file descriptors: a connected socket for messages
(`robopolicy.sim.worker_protocol`) and, unless it is -1, a shared-memory file holding the batched
observation buffer, where this worker writes its own slot.

Commands (JSON header, see the protocol module): init, reset, step, get_state, close. Every command gets one
reply: {"ok": true, ...} or {"ok": false, "error": "...", "traceback": "..."}; a Python exception in
the env is reported, not fatal. The worker exits when told to close or when the parent's end of
the socket closes (the parent died), so no orphan outlives its parent.
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import sys
import traceback
from typing import Any

import numpy as np

from robopolicy.errors import UserError
from robopolicy.sim.worker_protocol import ObsLayout, WorkerGone, recv_message, send_message


class _Worker:
    def __init__(self, sock: socket.socket, obs_fd: int) -> None:
        self._sock = sock
        self._obs_fd = obs_fd
        self._env: Any = None
        self._layout: ObsLayout | None = None
        self._views: dict[str, np.ndarray] = {}
        self._slot = 0
        self._buffer: mmap.mmap | None = None

    def init(self, header: dict[str, Any]) -> dict[str, Any]:
        # Imported here, after the parent's environment (MUJOCO_GL) is in place.
        from robopolicy.sim.config_json import config_from_json
        from robopolicy.sim.env import EnvConfig
        from robopolicy.sim.gym_env import TabletopGymEnv

        config = config_from_json(EnvConfig, header["config"])
        self._env = TabletopGymEnv(config=config)
        self._slot = int(header["slot"])
        self._layout = ObsLayout.from_space(self._env.observation_space, int(header["num_slots"]))
        if self._obs_fd >= 0:
            self._buffer = mmap.mmap(self._obs_fd, self._layout.nbytes)
            self._views = self._layout.batched_views(memoryview(self._buffer))
        return {
            "pid": os.getpid(),
            "layout": self._layout.describe(),
            "instruction": self._env.instruction,
            "max_steps": self._env.max_steps,
        }

    def _emit(self, obs: dict[str, np.ndarray]) -> bytes:
        assert self._layout is not None
        if self._buffer is not None:
            self._layout.write_slot(self._views, self._slot, obs)
            return b""
        return self._layout.pack(obs)

    def reset(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        options = dict(header.get("options") or {})
        if header.get("init_state"):
            options["init_state"] = np.frombuffer(payload, np.float64).copy()
        obs, info = self._env.reset(seed=header.get("seed"), options=options)
        return {"info": info}, self._emit(obs)

    def step(self, payload: bytes) -> tuple[dict[str, Any], bytes]:
        action = np.frombuffer(payload, np.float64).copy()
        obs, reward, terminated, truncated, info = self._env.step(action)
        reply = {"reward": reward, "terminated": terminated, "truncated": truncated, "info": info}
        return reply, self._emit(obs)

    def serve(self) -> None:
        while True:
            try:
                header, payload = recv_message(self._sock)
            except WorkerGone:
                return
            cmd = header.get("cmd")
            reply: dict[str, Any]
            data = b""
            try:
                if cmd == "init":
                    reply = self.init(header)
                elif cmd == "reset":
                    reply, data = self.reset(header, payload)
                elif cmd == "step":
                    reply, data = self.step(payload)
                elif cmd == "get_state":
                    reply, data = {}, self._env.sim.get_state().tobytes()
                elif cmd == "close":
                    self.close()
                    send_message(self._sock, {"ok": True})
                    return
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                reply["ok"] = True
            except Exception as err:
                reply = {
                    "ok": False,
                    "error": f"{type(err).__name__}: {err}",
                    "user_error": isinstance(err, UserError),
                    "message": str(err),
                    "traceback": traceback.format_exc(),
                }
                data = b""
            try:
                send_message(self._sock, reply, data)
            except WorkerGone:
                return

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        self._views = {}
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None


def main(argv: list[str]) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent handles it (and stops us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock_fd, obs_fd = int(argv[0]), int(argv[1])
    sock = socket.socket(fileno=sock_fd)
    worker = _Worker(sock, obs_fd)
    try:
        worker.serve()
    finally:
        worker.close()
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
