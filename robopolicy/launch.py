"""`robopolicy launch`: several processes of one training run on this machine, joined by
`jax.distributed`.

Each process gets the environment a cluster would give it (`JAX_COORDINATOR_ADDRESS` on localhost,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`; see `robopolicy.train.mesh`) and, with `cpu_devices`, that many
simulated CPU devices, then runs the training command with `--mesh.distributed`. The processes
together are one run over all their devices, exactly as hosts of a TPU slice or GPU nodes of a SLURM
job are, so a multi-host setup can be tried (and tested) on one CPU. Process 0 keeps the terminal;
the others' output lines are prefixed with their index. When one process fails, the others are
stopped, since the collectives would otherwise wait for it forever.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Annotated

import tyro

from robopolicy.errors import UserError
from robopolicy.train.mesh import COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV


@dataclass(frozen=True)
class LaunchConfig:
    """Processes of one training run on this machine.

    Attributes:
        num_processes: how many processes (each one "host" of the run).
        cpu_devices: simulated CPU devices per process (JAX on the CPU only); 0 leaves JAX's platform
            and devices as they are.
        port: the coordinator's port on localhost (0: a free one).
        command: the training command and its options, after `--`, e.g.
            `-- train --preset tiny --dataset D --out R` (`train` or `pretrain dynamo`).
    """

    num_processes: int = 2
    cpu_devices: int = 2
    port: int = 0
    command: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="-- COMMAND")] = ()

    def __post_init__(self) -> None:
        if self.num_processes < 1 or self.cpu_devices < 0 or not 0 <= self.port < 65536:
            raise ValueError(
                "LaunchConfig: num_processes must be >= 1, cpu_devices >= 0 and port a TCP port (0: free)"
            )


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(base: dict[str, str], index: int, count: int, port: int, cpu_devices: int) -> dict[str, str]:
    """The environment of process `index` of `count`: its place in the run and, with `cpu_devices`,
    that many simulated CPU devices."""
    env = {
        **base,
        COORDINATOR_ENV: f"127.0.0.1:{port}",
        NUM_PROCESSES_ENV: str(count),
        PROCESS_ID_ENV: str(index),
    }
    if cpu_devices:
        flags = f"{base.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={cpu_devices}"
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    return env


def start_processes(
    argv: Sequence[str], count: int, cpu_devices: int, port: int = 0, capture: bool = False
) -> list[subprocess.Popen]:
    """Start `argv` as processes 0 ... count-1 of one run. Without `capture`, process 0 writes to this
    terminal and the others' lines are prefixed with `[process i]`; with it, every process's stdout
    and stderr are pipes for the caller."""
    port = port or free_port()
    procs = []
    for index in range(count):
        env = process_env(dict(os.environ), index, count, port, cpu_devices)
        piped = capture or index > 0
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdout=subprocess.PIPE if piped else None,
            stderr=subprocess.STDOUT if piped and not capture else subprocess.PIPE if piped else None,
            text=True,
        )
        if piped and not capture:
            threading.Thread(target=_prefix_lines, args=(proc.stdout, index), daemon=True).start()
        procs.append(proc)
    return procs


def wait_processes(procs: list[subprocess.Popen], poll_s: float = 0.2) -> int:
    """Wait for all processes; when one fails, stop the rest. The first failure's status, else 0."""
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed:
                stop_processes(procs)
                return int(failed[0].returncode)
            time.sleep(poll_s)
    except KeyboardInterrupt:
        stop_processes(procs, signal.SIGINT)
        raise
    return next((int(p.returncode) for p in procs if p.returncode), 0)


def stop_processes(procs: list[subprocess.Popen], sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
    """Send `sig` to the processes still running; kill those that outlive the grace period."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def training_argv(command: Sequence[str], training_verbs: Sequence[str]) -> list[str]:
    """The command line each process runs: `robopolicy COMMAND --mesh.distributed`; UserError unless
    COMMAND starts with one of `training_verbs` (those with the `--mesh.*` options)."""
    two, one = " ".join(command[:2]), " ".join(command[:1])
    if two not in training_verbs and one not in training_verbs:
        raise UserError(
            f"launch: give a training command after `--` ({' or '.join(training_verbs)}), "
            f"got {' '.join(command)!r}"
        )
    return [sys.executable, "-m", "robopolicy.cli", *command, "--mesh.distributed"]


def launch(config: LaunchConfig, training_verbs: Sequence[str]) -> int:
    """Run `config.command` as `config.num_processes` processes of one run; their exit status."""
    argv = training_argv(config.command, training_verbs)
    print(
        f"launch: {config.num_processes} processes"
        + (f" × {config.cpu_devices} CPU devices" if config.cpu_devices else "")
        + f": {' '.join(argv[3:])}",
        file=sys.stderr,
        flush=True,
    )
    return wait_processes(start_processes(argv, config.num_processes, config.cpu_devices, config.port))


def _prefix_lines(stream: IO[str], index: int) -> None:
    for line in stream:
        sys.stderr.write(f"[process {index}] {line}")
        sys.stderr.flush()
