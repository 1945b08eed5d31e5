"""Parent-side handle of one vector-env worker: start, message, detect death, restart, stop.

A worker is a fresh Python interpreter (`subprocess.Popen` of `robopolicy.sim.vector_worker`): the
strongest form of the `spawn` start method. Nothing is forked from the parent, so no GL context,
MuJoCo model or lock can be inherited, and, unlike `multiprocessing`'s spawn, the user's `__main__`
is not re-imported and nothing is pickled. The worker's stdout and stderr go to an unlinked
temporary file whose tail explains a crash.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from robopolicy.errors import UserError
from robopolicy.sim.worker_protocol import WorkerGone, recv_message, send_message

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds `robopolicy/`
_LOG_TAIL_BYTES = 1500
_EXIT_WAIT_S = 5.0


class WorkerDied(RuntimeError):
    """The worker process exited, closed its socket or stopped answering; the message says why."""


class WorkerStartError(RuntimeError):
    """The worker is running but could not build its env (a bug or a broken install; see traceback)."""


def _exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class WorkerProcess:
    """One worker process serving env `index`; `start` launches it without waiting for it to load."""

    def __init__(
        self, index: int, init_message: dict[str, Any], obs_fd: int, timeout_s: float, start_timeout_s: float
    ) -> None:
        self.index = index
        self._init_message = init_message
        self._obs_fd = obs_fd
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._log: IO[bytes] | None = None
        self._hello: dict[str, Any] | None = None
        # Replies owed by the worker, and whether a message was cut by an interruption (Ctrl-C):
        # either leaves the socket out of step, so the worker is replaced before its next command.
        self._pending = 0
        self._broken = False

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the interpreter and queue the init message; `hello` waits for it to be ready."""
        parent_sock, child_sock = socket.socketpair()
        pass_fds = [child_sock.fileno()] + ([self._obs_fd] if self._obs_fd >= 0 else [])
        env = dict(os.environ)
        # The worker must import the same robopolicy as the parent, wherever sys.path found it.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self._log = tempfile.TemporaryFile(prefix=f"robopolicy-worker{self.index}-")  # noqa: SIM115 (lives as long as the worker)
        cmd = [
            sys.executable,
            "-m",
            "robopolicy.sim.vector_worker",
            str(child_sock.fileno()),
            str(self._obs_fd),
        ]
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=pass_fds, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env
            )
        finally:
            child_sock.close()
        self._sock = parent_sock
        self._hello = None
        self._pending = 0
        self._broken = False
        self._send(self._init_message)  # its reply is read by hello()

    def hello(self) -> dict[str, Any]:
        """The worker's reply to init (pid, observation layout, instruction, max_steps), waiting once."""
        if self._hello is None:
            header, _ = self._read(self._start_timeout_s)
            if not header.get("ok"):
                if header.get("user_error"):
                    # e.g. an invalid task spec: one line naming the file and field, as in one process.
                    raise UserError(header["message"])
                raise WorkerStartError(
                    f"worker {self.index} failed to build its env: {header.get('error')}\n{header.get('traceback', '')}"
                )
            self._hello = header
        return self._hello

    @property
    def out_of_step(self) -> bool:
        """True after an interrupted exchange; the next `send` then starts a fresh worker."""
        return self._broken or self._pending > 0

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Send a command that expects one reply (read with `recv`)."""
        if self.out_of_step:
            self.restart()
        self._send(header, payload)
        self._pending += 1

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        if self._sock is None:
            raise WorkerDied(f"worker {self.index} is not running")
        try:
            send_message(self._sock, header, payload)
        except WorkerGone as err:
            raise WorkerDied(self.death_reason(str(err))) from None
        except BaseException:
            self._broken = True
            raise

    def recv(self, timeout_s: float | None = None) -> tuple[dict[str, Any], bytes]:
        """The reply to the oldest unanswered command, within `timeout_s` (default: the command
        timeout); raises WorkerDied if the worker is gone or silent (a silent one is killed).
        """
        self.hello()  # the init reply comes first
        reply = self._read(timeout_s)
        self._pending -= 1
        return reply

    def _read(self, timeout_s: float | None) -> tuple[dict[str, Any], bytes]:
        if self._sock is None:
            raise WorkerDied(f"worker {self.index} is not running")
        timeout_s = self._timeout_s if timeout_s is None else timeout_s
        self._sock.settimeout(timeout_s)
        try:
            return recv_message(self._sock)
        except TimeoutError:
            self.kill()
            raise WorkerDied(self.death_reason(f"no reply within {timeout_s:g} s")) from None
        except WorkerGone as err:
            raise WorkerDied(self.death_reason(str(err))) from None
        except BaseException:
            self._broken = True
            raise

    def death_reason(self, what: str) -> str:
        """One line: which worker, its pid, how it ended, and the last line of its output."""
        returncode = None
        if self._proc is not None:
            try:
                returncode = self._proc.wait(_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                returncode = None
        reason = f"worker {self.index} (pid {self.pid}) {_exit_text(returncode)} ({what})"
        tail = self.log_tail().strip().splitlines()
        return f"{reason}; last output: {tail[-1]}" if tail else reason

    def log_tail(self) -> str:
        """The end of the worker's stdout/stderr."""
        if self._log is None:
            return ""
        self._log.flush()
        size = self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, size - _LOG_TAIL_BYTES))
        return self._log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the process and reap it (no zombie)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> None:
        """Ask the worker to close, then kill it if it does not exit promptly; release everything."""
        if self._proc is not None and self._sock is not None and self._proc.poll() is None:
            try:
                self._sock.settimeout(_EXIT_WAIT_S)
                send_message(self._sock, {"cmd": "close"})
                self._proc.wait(_EXIT_WAIT_S)
            except (WorkerGone, OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._proc = None
        self._hello = None
        self._pending = 0
        self._broken = False

    def restart(self) -> None:
        self.stop()
        self.start()
